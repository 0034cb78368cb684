"""GraphQL over HTTP on ``/graphql``: GET and POST, both response media types, status codes.

Follows the GraphQL-over-HTTP specification (draft of 2024): ``application/graphql-response+json``
when the client accepts it, with 4xx for request errors (a response with no ``data``);
``application/json`` otherwise, with 200 for every well-formed request. Mutations over GET are
refused with 405 before anything runs. A bad ``Authorization`` header is a 401 with a
GraphQL-shaped body (contract README, Authentication).

CSRF: a POST body is read only as ``application/json`` or ``application/graphql-response+json``,
types a browser sends cross-origin only after a CORS preflight; the "simple request" types a
hostile page can send without one (``text/plain``, ``application/x-www-form-urlencoded``,
``multipart/form-data``) are refused with 415 before the body is read. A document named by hash
(automatic persisted queries, ``documentId``) is resolved, and checked against the trusted
documents when only those may run, before either executor sees it (``graph/transport/persisted.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import OperationType
from starlette._utils import get_route_path  # the Router's: /graphql matches exactly as its Route would
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.backend import AuthenticationFailed, authenticate_deferred
from db.engine import is_database_unavailable
from graph import observability
from graph.admission.pipeline import Operation, Refused
from graph.cache_control import CachePolicy, cache_control_header
from graph.context import AppState, Context
from graph.errors import DATABASE_UNAVAILABLE_MESSAGE, INTERNAL_MESSAGE
from graph.execution.pipeline import RequestPipeline
from graph.transport.compression import accepted_encoding
from graph.transport.headers import PLAYGROUND_CSP
from graph.transport.persisted import Document, PersistedQueries, PersistedQueryError
from graph.transport.ratelimit import RETRY_AFTER, append_rate_limit_headers, retry_after
from graph.transport.secrets import SecretSelections

if TYPE_CHECKING:
    from db.budget import Budget
    from graph.responses import Entry, Lookup, ResponseCache

logger = logging.getLogger("conduit.http")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# on answers holding a credential: not kept (as every answer), and not compressed by us or by
# any proxy (RFC 9111, 5.2.2.6), against BREACH (graph/transport/compression.py, secrets.py)
CREDENTIAL_CACHE_CONTROL = "no-store, no-transform"
GET_OPERATIONS = frozenset({OperationType.QUERY})
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
CACHED_BODY: dict[str, Any] = {"data": {}}
"""What the access log and metrics learn of a cached answer's body: data, no error (only those are kept)."""


class RequestError(Exception):
    """A request that cannot be executed: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class GraphQLParams:
    """The parameters of a GraphQL-over-HTTP request.

    ``query`` is ``None`` when the request names a persisted document instead, by ``document_id``
    or the ``persistedQuery`` extension (``graph/transport/persisted.py`` resolves it).
    """

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None = None


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer with, or ``None`` when the client accepts neither JSON type.

    A missing ``Accept`` means ``application/json`` (GraphQL over HTTP, 5.2.1).
    """
    if not accept:
        return JSON
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if GRAPHQL_RESPONSE in types:
        return GRAPHQL_RESPONSE
    if types & {JSON, "*/*", "application/*"}:
        return JSON
    return None


def wants_playground(request: Request) -> bool:
    """A browser navigating to ``/graphql``: GET, HTML accepted, no ``query`` parameter."""
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and "query" not in request.query_params


def _json_object(value: Any, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RequestError(400, f"The '{name}' parameter is not valid JSON.") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(400, f"The '{name}' parameter must be an object.")
    return value


def parse_params(data: Any, *, from_url: bool) -> GraphQLParams:
    """Validate the request parameters (GraphQL over HTTP, 6.1); ``RequestError`` 400 otherwise."""
    if not isinstance(data, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "The 'query' parameter must be a string.")
    document_id = data.get("documentId")
    if document_id is not None and not isinstance(document_id, str):
        raise RequestError(400, "The 'documentId' parameter must be a string.")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "The 'operationName' parameter must be a string.")
    variables = data.get("variables")
    extensions = data.get("extensions")
    if not from_url and isinstance(variables, str):
        raise RequestError(400, "The 'variables' parameter must be an object.")
    if not from_url and isinstance(extensions, str):
        raise RequestError(400, "The 'extensions' parameter must be an object.")
    return GraphQLParams(
        query=query,
        variables=_json_object(variables, "variables"),
        operation_name=operation_name or None,
        extensions=_json_object(extensions, "extensions"),
        document_id=document_id,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"The request body is larger than {limit} bytes.")
    # the ASGI messages read directly: Request.stream()'s async generator cost more than
    # the rest of this function for the one-message body a query is
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise RequestError(400, "The client disconnected.")


async def read_params(request: Request, limit: int) -> GraphQLParams:
    """The GraphQL parameters of a GET (URL) or POST (JSON body) request."""
    if request.method == "GET":
        return parse_params(dict(request.query_params), from_url=True)
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise RequestError(415, "A POST request needs Content-Type: application/json.")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in (JSON, GRAPHQL_RESPONSE):
        raise RequestError(415, f"Unsupported Content-Type {media_type!r}; use application/json.")
    body = await read_body(request, limit)
    if not body:
        raise RequestError(400, "The request body is empty.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "The request body is not valid JSON.") from None
    if isinstance(data, list):
        raise RequestError(400, "Batched requests are not supported; send one operation per request.")
    return parse_params(data, from_url=False)


def is_request_error(result: GraphQLExecutionResult) -> bool:
    """Whether ``result`` failed before execution began: it then has no ``data`` entry."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(e.path is None for e in errors)


def error_body(message: str, code: str) -> dict[str, Any]:
    """A GraphQL-shaped body with one error and no data."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


class GraphQLHTTPHandler:
    """The Starlette endpoint for ``GET`` and ``POST /graphql`` (see the module docstring).

    Reads the request, resolves a persisted document, signs the viewer in, and hands the
    operation to the app's ``RequestPipeline`` (``graph/execution/pipeline.py``): admission, then
    whichever executor answers. ``respond`` is the one way out, recording the outcome. ``budget``
    (the cost budget's store, ``None`` when it is off) gives every GraphQL response its
    ``X-RateLimit-*`` headers (``graph/transport/ratelimit.py``). ``secrets`` tells which answers
    hold a credential: they get ``Cache-Control: no-store, no-transform``, which keeps them
    uncompressed (BREACH; ``None``: every answer is treated so). ``responses``, the response
    cache (``graph/responses/cache.py``; ``None``: off), answers before admission when it can.
    """

    def __init__(
        self,
        state: AppState,
        pipeline: RequestPipeline,
        playground: str | None,
        persisted: PersistedQueries | None = None,
        budget: Budget | None = None,
        secrets: SecretSelections | None = None,
        responses: ResponseCache | None = None,
    ) -> None:
        self.state = state
        self.pipeline = pipeline
        self.playground = playground
        self.persisted = persisted or PersistedQueries()
        self.budget = budget
        self.secrets = secrets
        self.responses = responses

    def respond(
        self,
        body: Any,
        status: int,
        media_type: str,
        headers: dict[str, str] | None = None,
        encoded: bytes | None = None,
    ) -> Response:
        """``body`` as UTF-8 JSON (``encoded``: already encoded); its outcome goes to the metrics and the access log.

        A ``RATE_LIMITED`` error's ``retryAfter`` becomes ``Retry-After`` unless ``headers`` set it.
        """
        observability.record_graphql_response(body, status)
        seconds = retry_after(body)
        if seconds is not None:
            headers = {RETRY_AFTER: str(seconds), **(headers or {})}
        content = encoded if encoded is not None else orjson.dumps(body)
        return Response(content, status_code=status, media_type=media_type, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ``/graphql`` route as a plain ASGI app: Starlette's ``request_response`` wrapper (its
        exception-handler plumbing for an endpoint that never raises) costs a few µs per request."""
        response = await self.handle(Request(scope, receive, send))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """The response to one HTTP request on ``/graphql`` (GraphQL over HTTP); never raises."""
        if request.method not in ("GET", "POST"):
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        if self.playground is not None and wants_playground(request):
            return FileResponse(
                self.playground,
                media_type="text/html; charset=utf-8",
                headers={"Content-Security-Policy": PLAYGROUND_CSP},
            )
        media_type = response_media_type(request.headers.get("accept"))
        if media_type is None:
            return Response(
                "Acceptable media types: application/graphql-response+json, application/json",
                status_code=406,
                media_type="text/plain",
            )
        context = Context(app=self.state, request=request, request_id=observability.begin_graphql_request())
        response = await self._answer(request, context, media_type)
        # after the budget step, if it ran: what it charged; else what is known without SQL
        append_rate_limit_headers(response, context.rate_limit, self.budget)
        return response

    async def _answer(self, request: Request, context: Context, media_type: str) -> Response:
        try:
            return await self._handle(request, context, media_type)
        except RequestError as error:
            return self.respond(error_body(error.message, "BAD_USER_INPUT"), error.status, media_type, error.headers)
        except PersistedQueryError as error:
            # a request error like a parse error: 400 only under graphql-response+json, unless malformed
            status = 400 if error.malformed or media_type == GRAPHQL_RESPONSE else 200
            return self.respond(error_body(error.message, error.code), status, media_type)
        except Exception as error:
            # Outside execution (signing in, admission): execution errors are in the result.
            body = error_body(INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR")
            status, headers = 500, None
            if is_database_unavailable(error):
                logger.error("database unavailable (request %s): %s", context.request_id, error)
                body = error_body(DATABASE_UNAVAILABLE_MESSAGE, "INTERNAL_SERVER_ERROR")
                status, headers = 503, {"Retry-After": "1"}
            else:
                logger.exception("unexpected error (request %s)", context.request_id)
            body["errors"][0]["extensions"]["requestId"] = context.request_id
            return self.respond(body, status, media_type, headers)
        finally:
            observability.record_viewer(context.viewer_id)
            with contextlib.suppress(Exception):  # a dead connection must not turn the answer into a 500
                await context.close()

    async def _handle(self, request: Request, context: Context, media_type: str) -> Response:
        params = await read_params(request, self.state.settings.max_body_bytes)
        # Before anything else: the pipeline must see the full text, already allowed.
        document = self.persisted.resolve(params.query, params.document_id, params.extensions)
        try:
            return await self._authenticated(request, context, media_type, params, document)
        except AuthenticationFailed as error:
            body = error_body(str(error), "UNAUTHENTICATED")
            return self.respond(body, 401, media_type, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async def _authenticated(
        self, request: Request, context: Context, media_type: str, params: GraphQLParams, document: Document
    ) -> Response:
        """``_handle`` once the request's credentials are read: raises ``AuthenticationFailed`` for a refused viewer.

        A known user's viewer is a guess until confirmed (``auth.backend.authenticate_deferred``):
        a planned query confirms it with its first statement, every other answer (a kept one,
        a refusal, the ordinary executor's, a mutation) with ``Context.confirm_viewer`` first.
        """
        state = self.state
        header = request.headers.get("authorization")
        context.viewer, context.viewer_unconfirmed = await authenticate_deferred(
            header, state.tokens, state.db, state.viewers
        )
        lookup: Lookup | None = None
        if self.responses is not None:
            lookup = await self.responses.lookup(
                document.query, params.operation_name, params.variables, document.extensions
            )
            if lookup is not None and lookup.entry is not None:
                if context.viewer is None or not lookup.entry.policy.private:
                    await context.confirm_viewer()
                    self.persisted.remember(document)
                    return self._cached_response(lookup.entry, media_type, request)
                lookup = None  # an anonymous answer: not for a viewer, whose answer is not kept either
        operation = Operation(
            query=document.query,
            operation_name=params.operation_name,
            variables=params.variables,
            context=context,
            allowed=GET_OPERATIONS if request.method == "GET" else POST_OPERATIONS,
            extensions=document.extensions,
            transport="HTTP",
        )
        try:
            result = await self.pipeline.run(operation)
        except Refused as refusal:
            await context.confirm_viewer()  # a refused token's 401 comes first
            status = refusal.status or (400 if media_type == GRAPHQL_RESPONSE else 200)
            body = {"errors": [error.formatted for error in refusal.errors]}
            return self.respond(body, status, media_type, refusal.headers or None)
        self.persisted.remember(document)  # an APQ registration is kept only once its document was admitted
        secret = self.secrets is None or self.secrets.carries_secret(operation.parsed, operation.selected)
        if secret:  # never cached, never compressed (BREACH)
            headers = {"Cache-Control": CREDENTIAL_CACHE_CONTROL}
            return self._result_response(result, media_type, request, None, headers)[0]
        policy = operation.cache_policy
        if lookup is not None and policy is not None and policy.private and context.viewer is not None:
            lookup = None  # a viewer's own answer
        response, cacheable = self._result_response(result, media_type, request, policy)
        if lookup is not None and cacheable is not None and policy is not None and self.responses is not None:
            encoded, etag = cacheable
            await self.responses.keep(lookup, operation, result.data, encoded, etag or strong_etag(encoded), policy)
        return response

    def _cached_response(self, entry: Entry, media_type: str, request: Request) -> Response:
        """A kept answer, with the headers its miss was sent with (``_result_response``), ``Age`` and ``X-Cache``."""
        observability.note_operation(entry.operation_type, entry.operation_name)
        headers = {
            "Cache-Control": cache_control_header(entry.policy),
            "Vary": "Accept, Authorization" if entry.policy.private else "Accept",
            "Age": str(max(0, int(time.time() - entry.created))),
            "X-Cache": "HIT",
        }
        gzipped = None
        if (
            entry.gzipped is not None
            and request.method != "HEAD"
            and accepted_encoding(request.headers.get("accept-encoding")) == "gzip"
        ):
            # kept compressed (``Entry.gzipped``): what the compression middleware would send
            # (it leaves an encoded response alone, and adds this Vary to identity ones)
            gzipped = entry.gzipped
            headers["Vary"] += ", Accept-Encoding"
        if request.method == "GET":
            # a strong validator names one representation: the gzipped one's is weak (RFC 9110, 8.8.1)
            headers["ETag"] = entry.etag if gzipped is None else f"W/{entry.etag}"
            if etag_matches(request.headers.get("if-none-match"), entry.etag):
                observability.record_graphql_response(CACHED_BODY, 304)
                return Response(status_code=304, headers=headers)
        observability.record_graphql_response(CACHED_BODY, 200)
        if gzipped is not None:
            headers["Content-Encoding"] = "gzip"
            return Response(gzipped, status_code=200, media_type=media_type, headers=headers)
        return Response(entry.body, status_code=200, media_type=media_type, headers=headers)

    def _result_response(
        self,
        result: GraphQLExecutionResult,
        media_type: str,
        request: Request,
        policy: CachePolicy | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Response, tuple[bytes, str | None] | None]:
        """The response to ``result``, and its body and ETag (GET only) when ``policy`` lets caches keep it."""
        body: dict[str, Any] = {}
        request_error = is_request_error(result)
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if not request_error:
            body = {"data": result.data, **body}
        if result.extensions:
            body["extensions"] = result.extensions
        status = 400 if request_error and media_type == GRAPHQL_RESPONSE else 200
        if policy is None or result.errors or policy.max_age <= 0:
            return self.respond(body, status, media_type, headers), None  # the middleware's no-store, unless set
        encoded = orjson.dumps(body)
        # the answer depends on the media type negotiated, and a private one on the viewer
        headers = {
            "Cache-Control": cache_control_header(policy),
            "Vary": "Accept, Authorization" if policy.private else "Accept",
        }
        etag = None
        if request.method == "GET":
            etag = headers["ETag"] = strong_etag(encoded)
            if etag_matches(request.headers.get("if-none-match"), etag):
                observability.record_graphql_response(body, 304)
                return Response(status_code=304, headers=headers), (encoded, etag)
        return self.respond(body, status, media_type, headers, encoded), (encoded, etag)


def strong_etag(content: bytes) -> str:
    """A strong entity tag for ``content`` (RFC 9110, 8.8.3): the first 128 bits of its SHA-256, quoted."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag`` (RFC 9110, 13.1.2: weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


class GraphQLShortcut:
    """The innermost middleware: HTTP requests to ``path`` go straight to ``endpoint``.

    ``endpoint`` is what the router's ``Route(path, endpoint)`` would call, and it gives the
    same answer here: it checks the method itself and never raises, so Starlette's exception
    middleware, router and route matching between them had nothing to do for it but cost about
    4% of a small query's CPU (Q2, py-spy). Everything else (the WebSocket on the same path
    included) goes on to them. ``path`` is matched as the router matches it, below the
    ``root_path`` a mounting server gives.
    """

    def __init__(self, app: ASGIApp, endpoint: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.endpoint = endpoint
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and get_route_path(scope) == self.path:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
