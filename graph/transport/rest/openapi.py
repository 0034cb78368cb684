"""``/api/openapi.json``: the OpenAPI 3.1 document of ``/api``, generated, never written by hand.

Built at startup from the endpoint declarations (``endpoints.py``: paths, methods, parameters,
statuses), the response shapes (``shapes.py``: each property's type from the GraphQL field it
reads) and the stored operations' variables (request bodies: the fields of their input types).
It follows the spec's own document (``../shared/realworld/openapi.yml``) as closely as our API
allows; ``tests/test_rest_openapi.py`` lists every difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    parse,
    type_from_ast,
)

from graph.transport.rest.endpoints import Body, Endpoint, NoContent, One, Page
from graph.transport.rest.shapes import GENERIC_ERROR, SCALARS, Shape, ref

ERROR_DESCRIPTIONS = {
    401: "Unauthorized: no, or a bad, token where one is needed, or a failed login",
    403: "Forbidden: signed in, but not allowed",
    404: "Not found",
    413: "Request body too large",
    415: "The request body is not application/json",
    422: "Unexpected error: invalid input",
    429: "Too many requests (the cost budget, or the login and registration limits); see Retry-After",
}
TAGS = ("Articles", "Comments", "Favorites", "Profile", "Tags", "User and Authentication")
SECURITY_DESCRIPTION = (
    "The access token (JWT) from registering (POST /users) or logging in (POST /users/login), in the "
    "'Authorization' header as `Token xxxxxx.yyyyyyy.zzzzzz` (`Bearer` is accepted too). It expires after "
    "CONDUIT_ACCESS_TOKEN_TTL_SECONDS."
)


def input_schema(graphql_type: GraphQLInputType) -> dict[str, Any]:
    """The JSON Schema of a scalar or list input type (null is accepted where GraphQL allows it, but
    not advertised: the spec's bodies do not)."""
    if isinstance(graphql_type, GraphQLNonNull):
        return input_schema(graphql_type.of_type)
    if isinstance(graphql_type, GraphQLList):
        return {"type": "array", "items": input_schema(graphql_type.of_type)}
    return dict(SCALARS[getattr(graphql_type, "name", "")])


def request_schema(body: Body, schema: GraphQLSchema, operation: str) -> dict[str, Any]:
    """The JSON Schema of a body's object: the fields of ``body.input``'s input type, or the
    variables ``body.fields`` names, from the stored operation's variable definitions; required
    when non-null without a default."""
    definition = next(d for d in parse(operation).definitions if isinstance(d, OperationDefinitionNode))
    variables = {v.variable.name.value: v for v in definition.variable_definitions or ()}
    fields: dict[str, tuple[GraphQLInputType, bool]] = {}
    if body.input is not None:
        input_type = type_from_ast(schema, variables[body.input].type)
        named = input_type.of_type if isinstance(input_type, GraphQLNonNull) else input_type
        if not isinstance(named, GraphQLInputObjectType):
            raise TypeError(f"/api: the body variable ${body.input} must be of an input object type")
        for name, field in named.fields.items():
            fields[name] = (field.type, isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined)
    else:
        for name in body.fields:
            variable_type = type_from_ast(schema, variables[name].type)
            fields[name] = (variable_type, isinstance(variable_type, GraphQLNonNull))  # type: ignore[assignment]
    properties: dict[str, Any] = {}
    for name, (field_type, _required) in fields.items():
        properties[name] = input_schema(field_type)
        if name == "password":
            properties[name]["format"] = "password"
    required = sorted(name for name, (_type, needed) in fields.items() if needed)
    return (
        {"type": "object", "required": required, "properties": properties}
        if required
        else {
            "type": "object",
            "properties": properties,
        }
    )


def envelope(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with every one of ``properties`` required."""
    return {"type": "object", "required": sorted(properties), "properties": properties}


def success_schema(endpoint: Endpoint) -> dict[str, Any] | None:
    """The JSON Schema of a successful answer's body (``None``: no body)."""
    response = endpoint.response
    if isinstance(response, NoContent):
        return None
    if isinstance(response, One):
        return envelope({response.key: ref(response.shape.name)})
    if isinstance(response, Page):
        return envelope(
            {response.key: {"type": "array", "items": ref(response.shape.name)}, response.count: {"type": "integer"}}
        )
    items = ref(response.shape.name) if response.shape is not None else {"type": "string"}
    return envelope({response.key: {"type": "array", "items": items}})


def operation_object(endpoint: Endpoint) -> dict[str, Any]:
    """The OpenAPI operation of one endpoint."""
    out: dict[str, Any] = {
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "description": endpoint.description,
        "operationId": endpoint.operation_id,
    }
    if endpoint.params:
        out["parameters"] = [
            {
                "name": param.name,
                "in": param.location,
                "description": param.description,
                "required": param.location == "path",
                "schema": param.json_schema(),
            }
            for param in endpoint.params
        ]
    if endpoint.body is not None:
        body = endpoint.body
        out["requestBody"] = {
            "required": True,
            "description": body.description,
            "content": {"application/json": {"schema": envelope({body.envelope: ref(body.name)})}},
        }
    responses: dict[str, Any] = {}
    success = success_schema(endpoint)
    if success is None:
        responses[str(endpoint.status)] = {"description": "No content"}
    else:
        responses[str(endpoint.status)] = {
            "description": "OK" if endpoint.status == 200 else "Created",
            "content": {"application/json": {"schema": success}},
        }
    statuses = set(endpoint.errors) | {429}
    if endpoint.body is not None:
        statuses |= {413, 415}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ref("GenericErrorModel")}},
        }
    out["responses"] = responses
    if endpoint.auth == "required":
        out["security"] = [{"Token": []}]
    return out


def openapi_document(
    endpoints: Sequence[Endpoint], schema: GraphQLSchema, prefix: str, operations: dict[str, str]
) -> dict[str, Any]:
    """The whole document (see the module docstring); ``prefix`` is the server URL (``/api``)."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation_object(endpoint)
        shape: Shape | None = getattr(endpoint.response, "shape", None)
        for nested in shape.shapes() if shape is not None else ():
            schemas[nested.name] = nested.json_schema(schema)
        if endpoint.body is not None:
            schemas[endpoint.body.name] = request_schema(endpoint.body, schema, operations[endpoint.operation_id])
    schemas["GenericErrorModel"] = GENERIC_ERROR
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conduit API (RealWorld REST)",
            "description": "RealWorld's REST API, answered by stored operations of this server's GraphQL API "
            "(/graphql). Generated from the endpoint declarations and the GraphQL schema.",
            "license": {"name": "MIT License", "url": "https://opensource.org/licenses/MIT"},
            "version": "1.1.0",
        },
        "servers": [{"url": prefix}],
        "tags": [{"name": tag} for tag in TAGS],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "Token": {
                    "type": "apiKey",
                    "description": SECURITY_DESCRIPTION,
                    "name": "Authorization",
                    "in": "header",
                }
            },
        },
    }
