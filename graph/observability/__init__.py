"""Operations visibility: Prometheus metrics on ``/metrics``, request ids, JSON access logs.

``/metrics`` is a route of the public app, or with ``CONDUIT_METRICS_PORT`` set, served only by
its own listener (``listener.py``).

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
- ``conduit_redis_unavailable_total{use}``: operations that went on without Redis
  (``CONDUIT_CACHE_URL``; ``db/redis.py``), by ``use``: ``budget`` (admitted uncharged) or
  ``auth_limits`` (counted in the database instead).
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

Log format: JSON lines or text (``json_logs``): ``CONDUIT_LOG_FORMAT`` or ``conduit serve
--log-format``, ``auto`` by default: text on a terminal in development, JSON otherwise.

Access log: one line per HTTP request on the ``conduit.access`` logger (see ``ACCESS_FIELDS``).
It never carries headers, query strings, variables or bodies, so no token or password reaches it.

Traces: OpenTelemetry, off unless the ``OTEL_*`` variables switch it on (``tracing.py``); then
``RequestIdFilter`` adds ``trace_id`` and ``span_id`` to every record, and the spans carry the
request id (``conduit.request_id``).
"""

from __future__ import annotations

from graph.observability.logs import (
    TEXT_FORMAT,
    LogFormat,
    RequestIdFilter,
    configure_logging,
    json_formatter,
    json_logs,
    logging_config,
)
from graph.observability.metrics import (
    MAX_LABEL_LENGTH,
    MAX_LOGGED_PATH_LENGTH,
    MAX_OPERATION_NAMES,
    METHODS,
    Metrics,
    PoolCollector,
    metrics_endpoint,
)
from graph.observability.middleware import ObservabilityMiddleware
from graph.observability.operation import (
    SubscriptionGauge,
    note_operation,
    observe_operation,
    register_subscription_fields,
)
from graph.observability.requests import (
    ACCESS_FIELDS,
    REQUEST_ID_HEADER,
    SANE_REQUEST_ID,
    RequestRecord,
    begin_graphql_request,
    current_request_id,
    graphql_outcome,
    incoming_request_id,
    new_request_id,
    record_graphql_response,
    record_viewer,
    request_id,
)

__all__ = [
    "ACCESS_FIELDS",
    "MAX_LABEL_LENGTH",
    "MAX_LOGGED_PATH_LENGTH",
    "MAX_OPERATION_NAMES",
    "METHODS",
    "REQUEST_ID_HEADER",
    "SANE_REQUEST_ID",
    "TEXT_FORMAT",
    "LogFormat",
    "Metrics",
    "ObservabilityMiddleware",
    "PoolCollector",
    "RequestIdFilter",
    "RequestRecord",
    "SubscriptionGauge",
    "begin_graphql_request",
    "configure_logging",
    "current_request_id",
    "graphql_outcome",
    "incoming_request_id",
    "json_formatter",
    "json_logs",
    "logging_config",
    "metrics_endpoint",
    "new_request_id",
    "note_operation",
    "observe_operation",
    "record_graphql_response",
    "record_viewer",
    "register_subscription_fields",
    "request_id",
]
