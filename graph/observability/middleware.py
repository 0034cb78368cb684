"""``ObservabilityMiddleware``: request ids, one access-log line and the HTTP metrics per request."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from opentelemetry.trace import Span, Tracer
from prometheus_client.multiprocess import mark_process_dead
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.observability.metrics import MAX_LABEL_LENGTH, MAX_LOGGED_PATH_LENGTH, METHODS, Metrics
from graph.observability.requests import (
    REQUEST_ID_HEADER,
    RequestRecord,
    _current,
    access_logger,
    incoming_request_id,
    logger,
    new_request_id,
)
from graph.observability.tracing import record_status, server_span

ROUTE_CACHE_SIZE = 4096
"""Request paths whose route template (the ``path`` label) one process remembers."""


class ObservabilityMiddleware:
    """Request ids, HTTP and GraphQL metrics, and the access log (module docstring).

    ``routes`` are the app's routes, used to label ``path`` by route template so that unknown
    paths cannot grow the label set. An unhandled exception is logged here (with the request
    id) and answered with a plain 500, so that response carries ``X-Request-ID`` too.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = (), tracer: Tracer | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.tracer = tracer  # None: tracing is off (graph/observability/tracing.py)
        self._routes_of_paths: dict[tuple[str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        record = RequestRecord(request_id=incoming_request_id(scope["headers"]) or new_request_id())
        # a copy: the router rewrites the scope it is given (a Mount's root_path), and _observe
        # labels the route from this one after the app has run
        scope = {**scope, "state": {**scope.get("state", {}), "request_id": record.request_id}}
        token = _current.set(record)
        try:
            if self.tracer is not None:
                # the access log inside the span, so its line carries the trace id
                with server_span(self.tracer, scope, self._route(scope), record.request_id) as span:
                    if span is None:  # a WebSocket: only the caller's trace context
                        await self.app(scope, receive, self._with_request_id(send, record, None))
                    else:
                        await self._http(scope, receive, send, record, span)
            elif scope["type"] == "websocket":
                await self.app(scope, receive, self._with_request_id(send, record, None))
            else:
                await self._http(scope, receive, send, record, None)
        finally:
            _current.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord, span: Span | None) -> None:
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
            status = response.get("status", 500)
            if span is not None:
                record_status(span, status)
            self._observe(scope, record, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        method = scope["method"]
        self.metrics.count_http(method if method in METHODS else "OTHER", self._route(scope), status)
        if record.graphql:
            self.metrics.observe_graphql(record, seconds)
        if not access_logger.isEnabledFor(logging.INFO):
            return
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
        key = (scope["type"], scope["path"])
        label = self._routes_of_paths.get(key)
        if label is not None:
            return label
        label = "other"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                label = str(getattr(route, "path", "other"))
                break
        # matching is regular expressions per route, on every request; paths are remembered up
        # to a bound, since a client chooses them (``/api/articles/<slug>``: one per article)
        if len(self._routes_of_paths) < ROUTE_CACHE_SIZE:
            self._routes_of_paths[key] = label
        return label

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
