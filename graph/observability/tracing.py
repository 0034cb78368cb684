"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables switch it on.

Where spans come from (one trace per HTTP request)::

    POST /graphql                  ObservabilityMiddleware (kind SERVER; HTTP conventions)
    └─ query HomePage              RequestPipeline (GraphQL conventions)
       ├─ parse, select_operation, ... budget    AdmissionPipeline: one span per step, named by it
       │  └─ INSERT ...            the budget's charge (SQL, below)
       └─ execute                  OperationExecutor; conduit.execution.path = planned | ordinary
          └─ SELECT ...            db/tracing.py (kind CLIENT; database conventions), every statement:
                                   SQLAlchemy's, fetch_raw's and write's (aiosqlite, sqlite3, asyncpg)

Over WebSocket every operation received is a trace of its own (no span for the connection,
which may last hours), with the admission and execution spans below it; a subscription's
span ends once its event stream is set up, and the events themselves have no span.

Semantic conventions followed (``opentelemetry-semantic-conventions`` 0.66b2, the
specification's v1.33 names): HTTP server spans (stable: ``http.request.method``,
``url.path``, ``url.scheme``, ``http.route``, ``http.response.status_code``, ``client.address``,
``server.address``, ``server.port``, ``user_agent.original``, ``error.type`` for a 5xx); GraphQL
(``graphql.operation.type``, ``graphql.operation.name``, span name ``query HomePage``); and
databases (``db/tracing.py``). Not recorded, ever: ``url.query`` (a GET's query string holds the
variables), ``graphql.document`` (literals in it may be secrets, e.g. an inline password, and
sanitizing it would cost a print of the document per request), variables, headers other than
``User-Agent``, SQL parameters, error messages (``error.type`` names the class or code only).
Our own attributes: ``conduit.request_id`` (the ``X-Request-ID`` on the server span and on
every operation span), ``conduit.execution.path``, ``conduit.execution.fallback``.

Switched on (``tracing_from_environment``) only when ``OTEL_SDK_DISABLED`` is not ``true`` and
either ``OTEL_TRACES_EXPORTER`` is set to something other than ``none`` or one of
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set. Exporters:
``otlp`` (the default; OTLP over HTTP with protobuf, the only protocol installed) and ``console``.
Everything else is the SDK's own reading of the standard variables: ``OTEL_SERVICE_NAME``
(default here ``conduit``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and
``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``), ``OTEL_BSP_*`` (the batch
processor), ``OTEL_EXPORTER_OTLP_*`` (headers, timeout, compression, certificates) and
``OTEL_PROPAGATORS`` (default ``tracecontext,baggage``: an incoming W3C ``traceparent`` makes the
server span its child, in the caller's trace).

When off, nothing is built and the request path checks one ``None`` per component
(``tracer is None``); no span object, no context lookup (``bench/README.md`` has the
measurement). When on, a request whose server span was sampled out (``OTEL_TRACES_SAMPLER``)
makes no other span: every built-in sampler decides once per trace, so each component checks
``sampled_out()`` instead of starting non-recording spans. The provider is the app's, not the
process-wide one (``trace.set_tracer_provider`` is never called), so every app a test builds has
its own, and tests hand ``processors`` in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from db.tracing import sampled_out, trace_statements

if TYPE_CHECKING:
    from graphql import GraphQLError
    from starlette.types import Scope

    from db.engine import Database
    from graph.admission.pipeline import Operation

__all__ = [
    "Tracing",
    "note_errors",
    "operation_span",
    "sampled_out",
    "server_span",
    "tracing_enabled",
    "tracing_from_environment",
]

TRACER_NAME = "conduit"
DEFAULT_SERVICE_NAME = "conduit"
REQUEST_ID = "conduit.request_id"
EXECUTION_PATH = "conduit.execution.path"
EXECUTION_FALLBACK = "conduit.execution.fallback"
UNNAMED_OPERATION = "GraphQL Operation"  # the conventions' name before (or without) an operation type
SPAN_OPTIONS: dict[str, Any] = {"record_exception": False, "set_status_on_exception": False}
"""For ``start_as_current_span``: an exception's message (a driver's, graphql-core's coercion
error) can quote a variable's value, so spans carry its class only (``failed``)."""


class TracingConfigurationError(ValueError):
    """The ``OTEL_*`` variables ask for something this server cannot do (an exporter not installed)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables in ``environ`` switch tracing on (module docstring)."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol.strip().lower() != "http/protobuf":
                raise TracingConfigurationError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is installed "
                    "(opentelemetry-exporter-otlp-proto-http)"
                )
            # imported here: it pulls in requests and protobuf, which an untraced server never needs
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise TracingConfigurationError(f"OTEL_TRACES_EXPORTER={name}: this server has otlp, console and none")
    return exporters


@dataclass(frozen=True)
class Tracing:
    """The app's tracer provider and the tracer every component of the request path uses."""

    provider: TracerProvider
    tracer: Tracer

    def instrument(self, db: Database) -> None:
        """Spans for every SQL statement ``db`` runs (``db/tracing.py``)."""
        trace_statements(db, self.tracer)

    def shutdown(self) -> None:
        """Export what is still queued and stop the exporters (the app's shutdown; blocks up to
        the exporters' timeouts, ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default)."""
        self.provider.shutdown()


def tracing_from_environment(
    environ: Mapping[str, str] | None = None, *, processors: Sequence[SpanProcessor] | None = None
) -> Tracing | None:
    """The app's tracing as the ``OTEL_*`` variables of ``environ`` (default ``os.environ``) say,
    ``None`` when they leave it off (module docstring).

    ``processors`` replaces the exporters the variables name and switches tracing on whatever
    they say: for tests (the SDK's ``InMemorySpanExporter`` behind a ``SimpleSpanProcessor``).
    Raises ``TracingConfigurationError`` for an exporter or protocol that is not installed.
    """
    environ = os.environ if environ is None else environ
    if processors is None:
        if not tracing_enabled(environ):
            return None
        processors = [BatchSpanProcessor(exporter) for exporter in _exporters(environ)]  # OTEL_BSP_* apply
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(provider, provider.get_tracer(TRACER_NAME))


# The HTTP server span (ObservabilityMiddleware)


def _headers(scope: Scope) -> dict[str, str]:
    # ASGI header names are lower-case already; a repeated header keeps its last value
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


@contextmanager
def server_span(tracer: Tracer, scope: Scope, route: str, request_id: str) -> Iterator[Span | None]:
    """The server span of an HTTP request (yielded, to record the status), a child of the
    caller's ``traceparent`` when one came; for a WebSocket only the caller's context (yields
    ``None``): each operation on it is then a trace of its own, below the caller's span if any."""
    headers = _headers(scope)
    parent = propagate.extract(headers)
    if scope["type"] == "websocket":
        token = otel_context.attach(parent)
        try:
            yield None
        finally:
            otel_context.detach(token)
        return
    method = scope["method"]
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "http.route": route,
        "network.protocol.version": scope.get("http_version", "1.1"),
        REQUEST_ID: request_id,
    }
    server, client = scope.get("server"), scope.get("client")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    if client:
        attributes["client.address"] = client[0]
    if "user-agent" in headers:
        attributes["user_agent.original"] = headers["user-agent"]
    name = f"{method} {route}" if route != "other" else method  # low cardinality: the route template
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=attributes, **SPAN_OPTIONS
    ) as span:
        yield span


def record_status(span: Span, status: int) -> None:
    """The response's status on the server span; a 5xx is an error (a 4xx is the client's)."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


# The GraphQL operation span (RequestPipeline)


@contextmanager
def operation_span(tracer: Tracer, operation: Operation) -> Iterator[Span]:
    """The span of one GraphQL operation, around its admission and execution; named once the
    operation is selected (``query HomePage``), ``GraphQL Operation`` when it never was."""
    attributes = {REQUEST_ID: operation.context.request_id}
    with tracer.start_as_current_span(UNNAMED_OPERATION, attributes=attributes, **SPAN_OPTIONS) as span:
        try:
            yield span
        except BaseException as error:
            refused = getattr(error, "errors", None)  # admission's Refused: its errors' code
            if isinstance(refused, list) and refused:
                note_errors(span, refused)
            else:
                failed(span, error)
            raise
        finally:
            definition = operation.definition
            if definition is not None:
                kind = definition.operation.value
                span.set_attribute("graphql.operation.type", kind)
                name = operation.name
                if name is not None:
                    span.set_attribute("graphql.operation.name", name)
                span.update_name(f"{kind} {name}" if name else kind)


def note_errors(span: Span, errors: Sequence[GraphQLError] | None) -> None:
    """Mark ``span`` failed when the response has errors: ``error.type`` is the first error's
    ``extensions.code`` (a fixed set, ``graph/errors.py``), never its message."""
    if errors:
        code = (errors[0].extensions or {}).get("code")
        span.set_attribute("error.type", code if isinstance(code, str) else "GraphQLError")
        span.set_status(Status(StatusCode.ERROR))


def failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed by ``error``: its class (or its GraphQL code) only, never its message."""
    span.set_status(Status(StatusCode.ERROR))
    span.set_attribute("error.type", type(error).__qualname__)


def step_name(step: object) -> str:
    """An admission step's name, as ``AdmissionPipeline.names`` gives it (the span's name)."""
    return str(getattr(step, "name", getattr(step, "__name__", type(step).__name__)))


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's trace id (32 hex digits) and span id (16), ``None`` outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
