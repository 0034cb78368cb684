"""Prometheus metrics: one registry per app, multiprocess-aware, served on ``/metrics``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from graph.observability.requests import RequestRecord

MAX_OPERATION_NAMES = 200
MAX_LABEL_LENGTH = 64
MAX_LOGGED_PATH_LENGTH = 256
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
        self._http_children: dict[tuple[str, str, int], Any] = {}
        self._graphql_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
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
        self.executions = Counter(
            "conduit_graphql_executions",
            "GraphQL operations answered, by execution path: planned or ordinary.",
            ["path"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "conduit_graphql_fallbacks",
            "Operations an execution path handed on to the next, by that path and a fixed reason code.",
            ["path", "reason"],
            registry=self.registry,
        )
        self.subscriptions_active = Gauge(
            "conduit_subscriptions_active",
            "Subscriptions running now, by root field.",
            ["field"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.redis_unavailable = Counter(
            "conduit_redis_unavailable",
            "Operations that went on without Redis, by what it would have served: budget or auth_limits.",
            ["use"],
            registry=self.registry,
        )
        # collectors of this process's state, read at every scrape in multiprocess mode too
        self._process_collectors: list[Collector] = []
        self.pool = PoolCollector(engine) if engine is not None else None
        if self.pool is not None:
            self.register(self.pool)
        self._operation_names: set[str] = set()

    def register(self, collector: Collector) -> None:
        """Serve ``collector`` too; in multiprocess mode it shows the scraped worker's values only."""
        self.registry.register(collector)
        self._process_collectors.append(collector)

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
        children = self._graphql_children.get(labels)
        if children is None:
            # ``labels()`` takes a lock and builds its key on every call; the children live as
            # long as the metric, and the label set is bounded (``operation_name_label``)
            children = (self.graphql_requests.labels(*labels), self.graphql_duration.labels(*labels))
            self._graphql_children[labels] = children
        children[0].inc()
        children[1].observe(seconds)
        if record.error_codes:
            self.count_errors(record.error_codes)

    def count_http(self, method: str, path: str, status: int) -> None:
        """Count one HTTP response (``conduit_http_requests_total``); ``path`` is a route template."""
        key = (method, path, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_requests.labels(method, path, str(status))
        child.inc()

    def count_errors(self, codes: Iterable[str]) -> None:
        """Count one error per entry of ``codes`` (``extensions.code`` values)."""
        for code in codes:
            self.resolver_errors.labels(code[:MAX_LABEL_LENGTH]).inc()

    def exposed_registry(self) -> CollectorRegistry:
        """The registry a scrape reads: this app's, or in multiprocess mode every worker's files
        plus this process's collectors (built per scrape: workers come and go)."""
        if self.multiprocess_dir is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        for collector in self._process_collectors:
            registry.register(collector)
        return registry

    def exposition(self) -> bytes:
        """The text exposition of every metric (all workers' in multiprocess mode)."""
        return generate_latest(self.exposed_registry())


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Any]:
    """The ``/metrics`` endpoint: the Prometheus text format of ``metrics``."""

    async def endpoint(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
