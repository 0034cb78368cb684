"""RealWorld's REST API on ``/api``, from stored GraphQL operations (issue 12).

- ``operations/*.graphql``: the stored operations, one per endpoint (``documents.py`` loads them);
- ``endpoints.py``: each endpoint's method, path, operation, variables and response;
- ``shapes.py``: the spec's objects, rendered from GraphQL data and described as JSON Schema;
- ``api.py``: ``RestAPI``, the routes, running each operation through the app's ``RequestPipeline``;
- ``openapi.py``: ``/api/openapi.json``, generated from the above.
"""

from graph.transport.rest.api import PREFIX, RestAPI

__all__ = ["PREFIX", "RestAPI"]
