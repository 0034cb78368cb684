"""``/api``: RealWorld's REST API, each endpoint a stored GraphQL operation run by the request pipeline.

A request is read into the operation's variables (``endpoints.py``: path, query and body), the
viewer is signed in from ``Authorization`` (``Token <jwt>``, RealWorld's scheme, or ``Bearer``;
``auth/backend.py``), and the stored operation (``operations/*.graphql``) goes through the same
``RequestPipeline`` as ``/graphql``: admission (limits, budget), planned SQL or graphql-core,
metrics and the access log. Its result becomes the spec's JSON; its errors become the spec's
statuses by ``extensions.code`` with the body ``{"errors": {"body": ["..."]}}``:

====================  ======  ===========================================================
code                  status  notes
====================  ======  ===========================================================
UNAUTHENTICATED       401     ``WWW-Authenticate: Token`` for a bad token
FORBIDDEN             403
NOT_FOUND             404     also a null ``article``/``user`` the endpoint needs
BAD_USER_INPUT        422     one message per field, named as the client named it
QUERY_TOO_COMPLEX     422
RATE_LIMITED          429     ``Retry-After``
other                 500     ``503`` with ``Retry-After: 1`` while the database is unreachable
====================  ======  ===========================================================

A malformed body is 422 (never 500), a body over ``CONDUIT_MAX_BODY_BYTES`` 413, a body that is
not ``application/json`` 415 (CSRF: only a preflighted type is read, as on ``/graphql``).
Answers that hold a token are ``Cache-Control: no-store, no-transform`` (BREACH,
``graph/transport/secrets.py``); cacheable GET answers get the operation's ``@cacheControl``
policy and an ETag, as ``/graphql`` gives them.

Spec: ``../shared/realworld/openapi.yml`` (RealWorld 1.1.0); its own suite,
``Conduit.postman_collection.json``, passes unmodified (``tests/test_realworld.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationType, parse, validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.backend import AuthenticationFailed, authenticate, token_from_header
from db.engine import is_database_unavailable
from graph import observability
from graph.admission.pipeline import Operation, Refused
from graph.cache_control import CachePolicy, cache_control_header
from graph.context import AppState, Context
from graph.errors import DATABASE_UNAVAILABLE_MESSAGE, INTERNAL_MESSAGE
from graph.execution.pipeline import RequestPipeline
from graph.ids import to_global_id
from graph.transport.http import CREDENTIAL_CACHE_CONTROL, RequestError, etag_matches, read_body, strong_etag
from graph.transport.ratelimit import RETRY_AFTER, append_rate_limit_headers, retry_after
from graph.transport.rest.documents import load_operations, selected_fields
from graph.transport.rest.endpoints import ENDPOINTS, Body, Endpoint, NoContent, One, Page, Param
from graph.transport.rest.openapi import openapi_document, request_schema
from graph.transport.rest.shapes import Token, error_body

if TYPE_CHECKING:
    from db.budget import Budget

logger = logging.getLogger("conduit.rest")

PREFIX = "/api"
JSON = "application/json"
STATUS_OF_CODE = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "BAD_USER_INPUT": 422,
    "QUERY_TOO_COMPLEX": 422,
    "RATE_LIMITED": 429,
}
"""The HTTP status of an error's ``extensions.code``; any other code is 500."""
QUERIES = frozenset({OperationType.QUERY})
WRITES = frozenset({OperationType.QUERY, OperationType.MUTATION})


CODE_OF_STATUS = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 413: "BAD_USER_INPUT", 415: "BAD_USER_INPUT"}
"""The code an answer that no operation gave is recorded with (metrics, access log); else BAD_USER_INPUT."""


class Invalid(ValueError):
    """A malformed request: one message per problem (each starts with the property's or parameter's name)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class Answer(Exception):
    """Ends a request early with ``status`` and the spec's error body of ``messages``.

    ``recorded``: the operation's errors already went to the metrics and the access log.
    """

    def __init__(
        self, status: int, messages: list[str], headers: dict[str, str] | None = None, *, recorded: bool = False
    ) -> None:
        super().__init__(messages[0] if messages else str(status))
        self.status = status
        self.messages = messages
        self.headers = headers or {}
        self.recorded = recorded


class RestAPI:
    """The ``/api`` routes (``routes()``) over the app's ``RequestPipeline`` (see the module docstring).

    ``schema`` is the GraphQL schema the stored operations are checked against at startup
    (``ValueError`` when one does not validate or does not select what its shapes read), and the
    OpenAPI document is built from. ``budget``: the cost budget's store, for the ``X-RateLimit-*``
    headers (``None`` when off).
    """

    def __init__(
        self, state: AppState, pipeline: RequestPipeline, schema: GraphQLSchema, budget: Budget | None = None
    ) -> None:
        self.state = state
        self.pipeline = pipeline
        self.budget = budget
        self.operations = load_operations()
        check_operations(schema, self.operations)
        self.request_schemas = {
            e.operation_id: request_schema(e.body, schema, self.operations[e.operation_id]) for e in ENDPOINTS if e.body
        }
        self.openapi = orjson.dumps(openapi_document(ENDPOINTS, schema, PREFIX, self.operations))

    def routes(self) -> list[Route]:
        """One route per path (its methods together), paths without parameters first (``/articles/feed``
        before ``/articles/{slug}``), and ``/api/openapi.json``. No catch-all: other ``/api`` routes
        (``/api/docs``) may sit beside them."""
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in ENDPOINTS:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        ordered = sorted(by_path, key=lambda path: ("{" in path, path))
        routes = [Route(PREFIX + path, self._endpoint(by_path[path]), methods=list(by_path[path])) for path in ordered]
        routes.append(Route(PREFIX + "/openapi.json", self.openapi_json, methods=["GET"]))
        return routes

    async def openapi_json(self, _request: Request) -> Response:
        """The OpenAPI 3.1 document of ``/api`` (``openapi.py``)."""
        return Response(self.openapi, media_type=JSON, headers={"Cache-Control": "public, max-age=300"})

    def _endpoint(self, methods: Mapping[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await self.handle(methods[method], request)

        return handle

    async def handle(self, endpoint: Endpoint, request: Request) -> Response:
        """Answer ``request`` with ``endpoint``'s operation (see the module docstring)."""
        context = Context(app=self.state, request=request, request_id=observability.begin_graphql_request())
        try:
            response = await self._answer(endpoint, request, context)
        finally:
            observability.record_viewer(context.viewer_id)
            with contextlib.suppress(Exception):  # a dead connection must not turn the answer into a 500
                await context.close()
        append_rate_limit_headers(response, context.rate_limit, self.budget)
        return response

    async def _answer(self, endpoint: Endpoint, request: Request, context: Context) -> Response:
        try:
            variables = await self._variables(endpoint, request)
            header = request.headers.get("authorization")
            try:
                context.viewer = await authenticate(header, self.state.tokens, self.state.db)
            except AuthenticationFailed as error:
                raise Answer(401, [str(error)], {"WWW-Authenticate": 'Token error="invalid_token"'}) from None
            if endpoint.guard is not None and context.viewer is not None:
                # anonymous: the operation refuses them (401) before the guard could say 404
                guard = endpoint.guard
                arguments = {name: variables[name] for name in guard.variables}
                data, _ = await self._run(endpoint, guard.operation, arguments, context, QUERIES)
                if _at(data, guard.path) != request.path_params[guard.equals]:
                    raise Answer(guard.status, [guard.message])
            allowed = QUERIES if endpoint.method == "GET" else WRITES
            data, policy = await self._run(endpoint, endpoint.operation_id, variables, context, allowed)
            return self._success(endpoint, request, data, policy, token_from_header(header))
        except RequestError as error:
            return self._refuse(Answer(error.status, [error.message], error.headers))
        except Answer as answer:
            return self._refuse(answer)
        except Exception as error:
            status, headers, message = 500, {}, INTERNAL_MESSAGE
            if is_database_unavailable(error):
                logger.error("database unavailable (request %s): %s", context.request_id, error)
                status, headers, message = 503, {"Retry-After": "1"}, DATABASE_UNAVAILABLE_MESSAGE
            else:
                logger.exception("unexpected error (request %s)", context.request_id)
            return self._refuse(Answer(status, [message], headers))

    def _refuse(self, answer: Answer) -> Response:
        """The spec's error response for ``answer``, recorded (unless its operation's errors were) with
        the code its status stands for."""
        if not answer.recorded:
            code = CODE_OF_STATUS.get(answer.status, "INTERNAL_SERVER_ERROR" if answer.status >= 500 else "")
            error = {"message": answer.messages[0], "extensions": {"code": code or "BAD_USER_INPUT"}}
            observability.record_graphql_response({"errors": [error]}, answer.status)
        headers = answer.headers
        if answer.status == 401 and "WWW-Authenticate" not in headers:
            headers = {"WWW-Authenticate": "Token", **headers}
        return self._respond(error_body(answer.messages), answer.status, headers)

    async def _variables(self, endpoint: Endpoint, request: Request) -> dict[str, Any]:
        """The operation's variables from the path, the query string and the body; ``Answer`` 422 when malformed."""
        variables: dict[str, Any] = {}
        problems: list[str] = []
        for param in endpoint.params:
            source = request.path_params if param.location == "path" else request.query_params
            raw = source.get(param.name)
            if raw is None:
                continue
            try:
                variables[param.variable] = parameter_value(param, raw)
            except ValueError as error:
                problems.append(f"{param.name} {error}")
        if endpoint.body is not None:
            try:
                variables.update(await self._body(endpoint, endpoint.body, request))
            except Invalid as invalid:
                problems.extend(invalid.messages)
        if problems:
            raise Answer(422, problems)
        return variables

    async def _body(self, endpoint: Endpoint, body: Body, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != JSON:
            raise RequestError(415, "The request body must be application/json.")
        raw = await read_body(request, self.state.settings.max_body_bytes)
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise Invalid(["The request body is not valid JSON."]) from None
        schema = self.request_schemas[endpoint.operation_id]
        value = data.get(body.envelope) if isinstance(data, dict) else None
        if not isinstance(value, dict):
            raise Invalid([f"{body.envelope} must be an object"])
        fields = checked_object(value, schema)
        if body.input is not None:
            return {body.input: fields}
        return fields

    async def _run(
        self,
        endpoint: Endpoint,
        name: str,
        variables: dict[str, Any],
        context: Context,
        allowed: frozenset[OperationType],
    ) -> tuple[Any, CachePolicy | None]:
        """Run the stored operation ``name``: its data and cache policy; ``Answer`` for its first error's code."""
        operation = Operation(
            query=self.operations[name],
            operation_name=name,
            variables=variables,
            context=context,
            allowed=allowed,
            transport="REST",
        )
        try:
            result = await self.pipeline.run(operation)
        except Refused as refusal:
            raise self._failure(endpoint, refusal.errors, None, refusal.headers) from None
        if result.errors:
            raise self._failure(endpoint, result.errors, result.data, {})
        observability.record_graphql_response({"data": result.data}, 200)
        return result.data, operation.cache_policy

    def _failure(self, endpoint: Endpoint, errors: list[GraphQLError], data: Any, headers: dict[str, str]) -> Answer:
        """The ``Answer`` for a failed operation: the first error's status, every error's messages."""
        formatted = [error.formatted for error in errors]
        graphql: dict[str, Any] = {"errors": formatted} if data is None else {"data": data, "errors": formatted}
        code = (formatted[0].get("extensions") or {}).get("code")
        status = STATUS_OF_CODE.get(code or "", 500)
        messages: list[str] = []
        for error in formatted:
            extensions = error.get("extensions") or {}
            fields = extensions.get("fields")
            if extensions.get("code") == "BAD_USER_INPUT" and isinstance(fields, dict) and fields:
                for name, texts in fields.items():
                    messages.extend(f"{endpoint.field_name(name)} {text}" for text in texts)
            else:
                messages.append(str(error.get("message")))
        if status == 500 and messages == [DATABASE_UNAVAILABLE_MESSAGE]:
            status, headers = 503, {"Retry-After": "1", **headers}
        seconds = retry_after(graphql)
        if seconds is not None:
            headers = {RETRY_AFTER: str(seconds), **headers}
        observability.record_graphql_response(graphql, status)
        return Answer(status, messages, headers, recorded=True)

    def _success(
        self, endpoint: Endpoint, request: Request, data: Any, policy: CachePolicy | None, header_token: str | None
    ) -> Response:
        response = endpoint.response
        if isinstance(response, NoContent):
            return self._respond(None, endpoint.status, {})
        body: dict[str, Any]
        secret = False
        if isinstance(response, One):
            value = _at(data, response.path)
            if value is None:
                if response.missing is None:  # pragma: no cover - a non-null field
                    raise Answer(500, [INTERNAL_MESSAGE])
                raise Answer(response.missing[0], [response.missing[1]])
            token = header_token if response.own_token else None
            if response.token is not None:
                token = _at(data, response.token)
            secret = any(isinstance(prop, Token) for prop in response.shape.properties.values())
            body = {response.key: response.shape.render(value, token)}
        elif isinstance(response, Page):
            connection = _at(data, response.path)
            body = {
                response.key: [response.shape.render(node) for node in connection["nodes"]],
                response.count: connection["totalCount"],
            }
        else:  # Items
            if response.missing is not None and _at(data, response.missing_at) is None:
                raise Answer(response.missing[0], [response.missing[1]])
            items = _at(data, response.path)
            shape = response.shape
            body = {response.key: [shape.render(item) for item in items] if shape is not None else items}
        if secret:  # never cached, never compressed (BREACH)
            return self._respond(body, endpoint.status, {"Cache-Control": CREDENTIAL_CACHE_CONTROL})
        if request.method not in ("GET", "HEAD") or policy is None or policy.max_age <= 0:
            return self._respond(body, endpoint.status, {})  # the middleware's no-store
        encoded = orjson.dumps(body)
        headers = {"Cache-Control": cache_control_header(policy), "ETag": strong_etag(encoded)}
        if policy.private:
            headers["Vary"] = "Authorization"
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return self._respond(body, endpoint.status, headers, encoded)

    @staticmethod
    def _respond(body: Any, status: int, headers: dict[str, str], encoded: bytes | None = None) -> Response:
        """``body`` as JSON (``encoded``: already encoded; ``None``: no body)."""
        if body is None:
            return Response(status_code=status, headers=headers)
        content = encoded if encoded is not None else orjson.dumps(body)
        return Response(content, status_code=status, media_type=JSON, headers=headers)


def _at(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in the data, ``None`` where a step is null."""
    for key in path:
        if data is None:
            return None
        data = data[key]
    return data


def parameter_value(param: Param, raw: str) -> Any:
    """A path or query parameter's variable value; ``ValueError`` (the message after its name) when invalid."""
    if param.kind == "string":
        return raw
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None
    if param.minimum is not None and value < param.minimum:
        raise ValueError(f"must be {param.minimum} or more")
    if param.maximum is not None and value > param.maximum:
        raise ValueError(f"must be {param.maximum} or less")
    if param.kind == "comment_id":
        return to_global_id("Comment", value)
    return value


JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
}


def checked_object(value: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of a body object ``schema`` declares, checked against their types.

    ``Invalid`` naming every property that is missing (``can't be empty``, RealWorld's wording)
    or of another type. Properties the schema does not declare are left out, as the spec allows
    them; null is passed on (the operation's input types say what it means).
    """
    properties: Mapping[str, Any] = schema["properties"]
    out: dict[str, Any] = {}
    problems = [f"{name} can't be empty" for name in schema.get("required", ()) if value.get(name) is None]
    for name, declared in properties.items():
        item = value.get(name)
        if item is None:
            if name in value:
                out[name] = None
            continue
        if declared["type"] == "array":
            item_type = declared["items"]["type"]
            if not isinstance(item, list) or not all(JSON_TYPES[item_type](entry) for entry in item):
                problems.append(f"{name} must be an array of {item_type}s")
        elif not JSON_TYPES[declared["type"]](item):
            problems.append(f"{name} must be a{'n' if declared['type'] == 'integer' else ''} {declared['type']}")
        out[name] = item
    if problems:
        raise Invalid(problems)
    return out


def check_operations(schema: GraphQLSchema, operations: Mapping[str, str]) -> None:
    """``ValueError`` unless every endpoint's stored operation (and guard) exists, validates against
    ``schema`` and selects every field its response shape reads."""
    for endpoint in ENDPOINTS:
        names = [endpoint.operation_id] + ([endpoint.guard.operation] if endpoint.guard else [])
        for name in names:
            text = operations.get(name)
            if text is None:
                raise ValueError(f"/api: no stored operation {name} in graph/transport/rest/operations")
            errors = validate(schema, parse(text))
            if errors:
                raise ValueError(f"/api: the stored operation {name} is invalid: {errors[0].message}")
        response = endpoint.response
        shape = getattr(response, "shape", None)
        if shape is None:
            continue
        missing = shape.fields() - selected_fields(schema, operations[endpoint.operation_id])
        if missing:
            raise ValueError(f"/api: {endpoint.operation_id} does not select {sorted(missing)}")
