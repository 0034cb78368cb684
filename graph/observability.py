"""Operations visibility: Prometheus metrics on ``/metrics``, request ids, JSON access logs.

Metrics (each app has its own ``CollectorRegistry``, so test apps never share counters):

- ``conduit_http_requests_total{method,path,status}``: every HTTP response. ``path`` is the
  route template (``/graphql``, ``/metrics``...) or ``other``; ``method`` is ``OTHER`` when unusual.
- ``conduit_graphql_requests_total{operation_name,operation_type,outcome}`` and
  ``conduit_graphql_request_duration_seconds{...}`` (histogram, seconds): GraphQL over HTTP.
  ``outcome`` is ``ok`` (no errors), ``error`` (errors alongside ``data``), ``rejected`` (a
  request error: no ``data``), ``unauthenticated`` (a bad ``Authorization`` header, 401) or
  ``failed`` (a 5xx: the database unreachable, an unhandled exception). ``operation_name`` is
  ``anonymous`` for unnamed or unparsable operations and ``other`` once ``MAX_OPERATION_NAMES``
  distinct names were seen; ``operation_type`` is ``query``, ``mutation``, ``subscription`` or
  ``unknown``.
- ``conduit_graphql_resolver_errors_total{code}``: each error in a GraphQL response (HTTP, and
  WebSocket results), by ``extensions.code``.
- ``conduit_subscriptions_active{field}``: subscriptions running now, by root field.
- ``conduit_db_pool_connections{state}``: ``checked_out``, ``idle`` and ``overflow`` connections
  of the engine's pool, read at scrape time (absent for pools that do not count, such as the
  ``StaticPool`` of an in-memory SQLite database).

Several worker processes (``uvicorn --workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
writable directory before the server starts (prometheus_client picks its storage when first
imported), and clear it on every start. Counters, histograms and the subscriptions gauge (summed
over live workers) are then written there by every worker, and ``/metrics`` serves
``prometheus_client.multiprocess.MultiProcessCollector``, which adds up all workers whichever one
answers the scrape. A worker marks itself dead at a clean shutdown; one that crashed keeps its
last subscriptions count until the directory is cleared. The pool gauge is per process and
reports the pool of the worker that answered.

Request ids: ``ObservabilityMiddleware`` (pure ASGI, so streaming responses and WebSockets are
untouched) takes a sane ``X-Request-ID`` from the request or makes one, keeps it in a contextvar
(``current_request_id()``, also ``request.state.request_id``), echoes it in the response header,
and ``RequestIdFilter`` stamps it on every log record emitted while the request is handled. Masked
errors return the same id as ``extensions.requestId``.

Access log: one line per HTTP request on the ``conduit.access`` logger (see ``ACCESS_FIELDS``).
It never carries headers, query strings, variables or bodies, so no token or password reaches it.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graphql import DocumentNode, FieldNode, OperationDefinitionNode
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry import Schema
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

access_logger = logging.getLogger("conduit.access")
logger = logging.getLogger("conduit.http")

REQUEST_ID_HEADER = "x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_OPERATION_NAMES = 200
MAX_LABEL_LENGTH = 64
MAX_LOGGED_PATH_LENGTH = 256
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ACCESS_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "operation_name",
    "operation_type",
    "outcome",
    "viewer_id",
    "client",
)


@dataclass
class RequestRecord:
    """What is known about the HTTP request or WebSocket connection being handled.

    The middleware creates it; the GraphQL handler and ``OperationObserver`` fill in the
    operation fields (``graphql`` is set once the request turned out to be a GraphQL operation).
    """

    request_id: str
    graphql: bool = False
    operation_name: str | None = None
    operation_type: str | None = None
    outcome: str | None = None
    viewer_id: int | None = None
    error_codes: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("conduit_request", default=None)


def new_request_id() -> str:
    """32 random hex digits. Not ``uuid4``: its ``os.urandom`` call lets go of the GIL, and taking
    it back behind the SQLite threads cost about 7% of the home page's time (py-spy); an id
    only has to be unique, not secret."""
    return f"{random.getrandbits(128):032x}"


def current_request_id() -> str | None:
    """The id of the request being handled in this context, ``None`` outside a request."""
    record = _current.get()
    return record.request_id if record is not None else None


def request_id() -> str:
    """The current request id, or a fresh one (32 hex digits) outside the middleware."""
    return current_request_id() or new_request_id()


def begin_graphql_request() -> str:
    """Mark the current HTTP request as a GraphQL operation and return its request id.

    Its outcome is ``failed`` until ``record_graphql_response`` records the response.
    """
    record = _current.get()
    if record is None:
        return new_request_id()
    record.graphql = True
    record.outcome = "failed"
    return record.request_id


def record_graphql_response(body: Mapping[str, Any], status: int) -> None:
    """Note the outcome and the error codes of the GraphQL response ``body`` sent with ``status``."""
    record = _current.get()
    if record is None:
        return
    record.outcome = graphql_outcome(body, status)
    record.error_codes = [_error_code(error) for error in body.get("errors") or ()]


def record_operation(operation_type: str, operation_name: str | None) -> None:
    """Note the operation of the current request when it ran outside Strawberry (the compiled path)."""
    record = _current.get()
    if record is not None and record.graphql:
        record.operation_type = operation_type
        record.operation_name = operation_name


def record_viewer(viewer_id: int | None) -> None:
    """Note the signed-in user (a user id) of the current request for the access log."""
    record = _current.get()
    if record is not None:
        record.viewer_id = viewer_id


def graphql_outcome(body: Mapping[str, Any], status: int) -> str:
    """``ok``, ``error``, ``rejected``, ``unauthenticated`` or ``failed`` for a response (module docstring)."""
    if status >= 500:  # e.g. 503 while the database is unreachable
        return "failed"
    if status == 401:
        return "unauthenticated"
    if "data" not in body:
        return "rejected"
    return "error" if body.get("errors") else "ok"


def _error_code(error: Any) -> str:
    code = error.get("extensions", {}).get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) and code else "UNKNOWN"


class PoolCollector(Collector):
    """``conduit_db_pool_connections{state}`` read from the engine's pool at every scrape."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        """One gauge family; empty when the pool does not count its connections."""
        gauge = GaugeMetricFamily(
            "conduit_db_pool_connections", "Database pool connections by state.", labels=["state"]
        )
        pool: Any = self.engine.pool
        if all(hasattr(pool, name) for name in ("checkedout", "checkedin", "overflow")):
            gauge.add_metric(["checked_out"], pool.checkedout())
            gauge.add_metric(["idle"], pool.checkedin())
            # QueuePool counts overflow from -pool_size while the pool is still filling
            gauge.add_metric(["overflow"], max(0, pool.overflow()))
        yield gauge

    def describe(self) -> Iterable[Metric]:
        """The family without samples, so registering never reads the pool."""
        yield GaugeMetricFamily("conduit_db_pool_connections", "Database pool connections by state.", labels=["state"])


class Metrics:
    """The app's metrics (module docstring) on their own registry.

    ``multiprocess_dir`` defaults to ``PROMETHEUS_MULTIPROC_DIR``; when set, ``exposition()``
    aggregates every worker's files instead of reading this registry.
    """

    def __init__(self, engine: AsyncEngine | None = None, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        labels = ["operation_name", "operation_type", "outcome"]
        self.http_requests = Counter(
            "conduit_http_requests", "HTTP responses sent.", ["method", "path", "status"], registry=self.registry
        )
        self.graphql_requests = Counter(
            "conduit_graphql_requests", "GraphQL operations over HTTP.", labels, registry=self.registry
        )
        self.graphql_duration = Histogram(
            "conduit_graphql_request_duration_seconds",
            "Time to answer a GraphQL operation over HTTP, in seconds.",
            labels,
            registry=self.registry,
        )
        self.resolver_errors = Counter(
            "conduit_graphql_resolver_errors", "Errors in GraphQL responses, by code.", ["code"], registry=self.registry
        )
        self.subscriptions_active = Gauge(
            "conduit_subscriptions_active",
            "Subscriptions running now, by root field.",
            ["field"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool = PoolCollector(engine) if engine is not None else None
        if self.pool is not None:
            self.registry.register(self.pool)
        self._operation_names: set[str] = set()

    def operation_name_label(self, name: str | None) -> str:
        """A bounded label for ``name``: capped in length, ``other`` past the distinct-name limit."""
        if not name:
            return "anonymous"
        name = name[:MAX_LABEL_LENGTH]
        if name not in self._operation_names:
            if len(self._operation_names) >= MAX_OPERATION_NAMES:
                return "other"
            self._operation_names.add(name)
        return name

    def observe_graphql(self, record: RequestRecord, seconds: float) -> None:
        """Count one GraphQL-over-HTTP request that took ``seconds``, and its errors."""
        labels = (
            self.operation_name_label(record.operation_name),
            record.operation_type or "unknown",
            record.outcome or "failed",
        )
        self.graphql_requests.labels(*labels).inc()
        self.graphql_duration.labels(*labels).observe(seconds)
        self.count_errors(record.error_codes)

    def count_errors(self, codes: Iterable[str]) -> None:
        """Count one error per entry of ``codes`` (``extensions.code`` values)."""
        for code in codes:
            self.resolver_errors.labels(code[:MAX_LABEL_LENGTH]).inc()

    def exposition(self) -> bytes:
        """The text exposition of every metric (all workers' in multiprocess mode)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        if self.pool is not None:
            registry.register(self.pool)
        return generate_latest(registry)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Any]:
    """The ``/metrics`` endpoint: the Prometheus text format of ``metrics``."""

    async def endpoint(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if name is None or (definition.name is not None and definition.name.value == name):
            return definition
    return None


def _root_field(document: DocumentNode | None, name: str | None) -> str:
    operation = _operation(document, name) if document is not None else None
    if operation is not None and operation.selection_set.selections:
        selection = operation.selection_set.selections[0]
        if isinstance(selection, FieldNode):
            return selection.name.value
    return "unknown"


class OperationObserver(SchemaExtension):
    """Reports each operation to the request record and the subscription gauge.

    A subscription counts as active from the start of its execution until its stream ends,
    whichever way: completed, failed, stopped by the client or its connection closed (the
    stream is cancelled and the operation hook exits). Errors of streamed results (WebSocket)
    are counted here; those of HTTP responses by the middleware.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics
        self._subscription: str | None = None

    def _operation_type(self) -> OperationType | None:
        try:
            return self.execution_context.operation_type
        except RuntimeError:  # unparsable document, or no operation of the given name
            return None

    def on_operation(self) -> Iterator[None]:
        """Record the operation on the HTTP request; end the subscription, if one started."""
        try:
            yield
        finally:
            record = _current.get()
            if record is not None and record.graphql:
                operation_type = self._operation_type()
                if operation_type is not None:
                    record.operation_type = operation_type.value
                    record.operation_name = self.execution_context.operation_name
            if self._subscription is not None:
                self.metrics.subscriptions_active.labels(self._subscription).dec()
                self._subscription = None

    def on_execute(self) -> Iterator[None]:
        """Start counting a subscription: it passed validation and is about to run."""
        if self._subscription is None and self._operation_type() is OperationType.SUBSCRIPTION:
            context = self.execution_context
            self._subscription = _root_field(context.graphql_document, context.operation_name)
            self.metrics.subscriptions_active.labels(self._subscription).inc()
        yield

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Count the errors of one streamed result by code."""
        if isinstance(result, ExecutionResult) and result.errors:
            self.metrics.count_errors(_error_code({"extensions": error.extensions or {}}) for error in result.errors)
        yield


def instrument_schema(schema: Schema, metrics: Metrics) -> None:
    """Add ``OperationObserver`` (reporting to ``metrics``) to ``schema``'s extensions.

    Also exports a zero for every subscription field, so dashboards see them before first use.
    """
    # Strawberry reads the extensions on every execution; appending keeps create_schema unaware of metrics.
    schema.extensions = (*schema.extensions, partial(OperationObserver, metrics))
    subscription = schema.get_type_by_name("Subscription")
    for strawberry_field in getattr(subscription, "fields", ()):
        metrics.subscriptions_active.labels(schema.config.name_converter.get_graphql_name(strawberry_field))


def incoming_request_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The client's ``X-Request-ID`` when it is 1-128 characters of ``[A-Za-z0-9._-]``."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if SANE_REQUEST_ID.fullmatch(text) else None
    return None


class ObservabilityMiddleware:
    """Request ids, HTTP and GraphQL metrics, and the access log (module docstring).

    ``routes`` are the app's routes, used to label ``path`` by route template so that unknown
    paths cannot grow the label set. An unhandled exception is logged here (with the request
    id) and answered with a plain 500, so that response carries ``X-Request-ID`` too.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        record = RequestRecord(request_id=incoming_request_id(scope["headers"]) or new_request_id())
        scope = {**scope, "state": {**scope.get("state", {}), "request_id": record.request_id}}
        token = _current.set(record)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, self._with_request_id(send, record, None))
            else:
                await self._http(scope, receive, send, record)
        finally:
            _current.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        started = time.perf_counter()
        response: dict[str, int] = {}
        send = self._with_request_id(send, record, response)
        try:
            await self.app(scope, receive, send)
        except Exception:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if "status" not in response:  # otherwise the response has begun; the server closes the connection
                await send(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
        finally:
            self._observe(scope, record, response.get("status", 500), time.perf_counter() - started)

    def _observe(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        method = scope["method"]
        self.metrics.http_requests.labels(
            method if method in METHODS else "OTHER", self._route(scope), str(status)
        ).inc()
        if record.graphql:
            self.metrics.observe_graphql(record, seconds)
        client = scope.get("client")
        fields = {
            "request_id": record.request_id,
            "method": method[:16],
            "path": scope["path"][:MAX_LOGGED_PATH_LENGTH],  # never the query string: it may hold variables
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "operation_name": (record.operation_name or "")[:MAX_LABEL_LENGTH] or None,
            "operation_type": record.operation_type,
            "outcome": record.outcome,
            "viewer_id": record.viewer_id,
            "client": client[0] if client else None,
        }
        access_logger.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return str(getattr(route, "path", "other"))
        return "other"

    @staticmethod
    def _with_request_id(send: Send, record: RequestRecord, response: dict[str, int] | None) -> Send:
        header = (REQUEST_ID_HEADER.encode(), record.request_id.encode())

        async def wrapped(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                if response is not None and message["type"] == "http.response.start":
                    response["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        return wrapped

    def _lifespan_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.metrics.multiprocess_dir is not None:
                # drop this worker's live gauges (subscriptions) from the aggregate
                mark_process_dead(os.getpid(), self.metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
            await send(message)

        return wrapped


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the id of the request being handled (or ``default``).

    Attach it to handlers: a logger's own filters do not see records of its child loggers.
    """

    def __init__(self, default: str | None = None) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only adds the field."""
        if getattr(record, "request_id", None) is None:
            request = current_request_id() or self.default
            if request is not None:
                record.request_id = request
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def json_formatter() -> JsonFormatter:
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, extras."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # uvicorn adds an ANSI-coloured copy of some messages
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def logging_config(level: str | int = "INFO", *, json: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary: one stderr handler on the root logger.

    uvicorn's loggers propagate to it (its access log is replaced by ``conduit.access``). Pass
    the same dictionary to ``uvicorn.run(log_config=...)``: every worker process applies it.
    """
    if isinstance(level, str):
        level = level.upper()
        if level == "TRACE":  # uvicorn's level below DEBUG, unknown to logging until uvicorn registers it
            level = 5
    formatter: dict[str, Any] = {"()": f"{__name__}.json_formatter"} if json else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"conduit": formatter},
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter", "default": None if json else "-"}},
        "handlers": {
            "conduit": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "conduit",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["conduit"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str | int = "INFO", *, json: bool = True) -> None:
    """Log to stderr at ``level``, as JSON lines (``json``) or text, with request ids."""
    logging.config.dictConfig(logging_config(level, json=json))
