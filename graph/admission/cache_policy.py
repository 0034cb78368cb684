"""The operation's cache policy (``graph/cache_control.py``), worked out once per document after validation.

The HTTP transport turns it into ``Cache-Control`` (and, for GET, an ``ETag``); the policy
depends on the document and the operation chosen, not on variables or the viewer, so it is
remembered in the app's ``costs`` cache beside the operation costs.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema

from graph.admission.pipeline import Operation
from graph.cache_control import operation_policy
from graph.caches import BoundedCache

POLICY_KEY = "cache-policy"
"""The first item of a policy's key in the ``costs`` cache (a cost's key starts with the document)."""


class CachePolicyStep:
    """Sets ``operation.cache_policy``; refuses nothing."""

    name = "cache_policy"  # AdmissionPipeline.names() and the step's trace span

    def __init__(self, schema: GraphQLSchema, cache: BoundedCache[Any, Any]) -> None:
        self.schema = schema
        self.cache = cache

    def __call__(self, operation: Operation) -> None:
        operation.cache_policy = operation.remembered(
            self.cache, POLICY_KEY, lambda: operation_policy(self.schema, operation.parsed, operation.selected)
        )
