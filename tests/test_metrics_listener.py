"""``/metrics`` off the public port (``CONDUIT_METRICS_PORT``, graph/observability/listener.py)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graph.observability.listener import MetricsListener
from graph.observability.metrics import Metrics
from graph.settings import Settings
from tests.live import free_port, live_server
from tests.test_deployment import _children, _cmdline, conduit_serve, pg_database  # noqa: F401 (a fixture)
from tests.waiting import until_sync


def counted(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with ``labels`` in a Prometheus text exposition."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def refused(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` any more."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_metrics_move_to_their_own_port(settings: Settings) -> None:
    port = free_port()
    with live_server(settings.model_copy(update={"metrics_port": port})) as url:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{url}/graphql", json={"query": "query Listed { tags }"})).status_code == 200
            public = await http.get(f"{url}/metrics")
            scrape = await http.get(metrics_url)
            elsewhere = await http.get(f"http://127.0.0.1:{port}/graphql")
    assert public.status_code == 404
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    # the public app's own metrics, the 404 above included
    assert counted(scrape.text, "conduit_graphql_requests_total", operation_name="Listed") == 1
    assert counted(scrape.text, "conduit_http_requests_total", path="other", status="404") == 1
    assert counted(scrape.text, "conduit_cache_entries") >= 1 and "conduit_db_pool_connections" in scrape.text
    assert elsewhere.status_code == 404
    assert refused(port)  # the app's shutdown closed it


async def test_metrics_stay_on_the_public_port_by_default(settings: Settings) -> None:
    with live_server(settings) as url:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{url}/metrics")
    assert response.status_code == 200 and "conduit_http_requests_total" in response.text


@pytest.fixture
def listeners() -> Iterator[list[MetricsListener]]:
    started: list[MetricsListener] = []
    yield started
    for listener in started:
        server = listener._server
        if server is not None:
            server.shutdown()
            server.server_close()


def test_workers_share_the_port_but_nothing_else_takes_it(listeners: list[MetricsListener]) -> None:
    port = free_port()
    for _ in range(2):  # as two workers of one `conduit serve --workers 2` would
        listener = MetricsListener(Metrics(), "127.0.0.1", port)
        listener.start()
        listeners.append(listener)
        assert listener.address == ("127.0.0.1", port)
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    with socket.socket() as holder:  # a program that binds without SO_REUSEPORT
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError):
            MetricsListener(Metrics(), "127.0.0.1", holder.getsockname()[1]).start()


@pytest.mark.slow  # a fresh `conduit serve` process
def test_conduit_serve_serves_metrics_on_the_metrics_port_only(template_db: Path, tmp_path: Path) -> None:
    database = tmp_path / "serve.db"
    database.write_bytes(template_db.read_bytes())
    port = free_port()
    env = {"CONDUIT_METRICS_PORT": str(port)}
    with conduit_serve(f"sqlite:///{database}", tmp_path, name="metrics", env=env) as server:
        assert httpx.post(f"{server.url}/graphql", json={"query": "query Served { tags }"}).status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scrape.status_code == 200
        assert counted(scrape.text, "conduit_graphql_requests_total", operation_name="Served") == 1
        assert f"Metrics: http://127.0.0.1:{port}/metrics" in server.output()
        pid = server.process.pid
    # stopped by its pid: SIGTERM, a clean shutdown, then uvicorn re-raises the signal it caught
    assert "Application shutdown complete" in server.output(), server.output()
    assert refused(port), pid


@pytest.mark.slow  # fresh `conduit serve` processes, PostgreSQL
def test_every_worker_binds_the_metrics_port(pg_database: str, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    env = {"CONDUIT_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    with conduit_serve(pg_database, tmp_path, "--workers", "2", name="workers", env=env) as server:
        # a worker that could not bind would fail its startup and be gone
        until_sync(
            lambda: len(re.findall(r"metrics on http://127\.0\.0\.1:\d+/metrics", server.output())) == 2,
            lambda: f"both workers' listeners:\n{server.output()}",
        )
        workers = [p for p in _children(server.process.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, server.output()
        sent = 6
        for _ in range(sent):
            with httpx.Client() as http:  # a new connection each time: either worker may take it
                assert http.post(f"{server.url}/graphql", json={"query": "query Shared { tags }"}).status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404

        def scraped() -> float:
            with httpx.Client() as http:
                return counted(
                    http.get(f"http://127.0.0.1:{port}/metrics").text,
                    "conduit_graphql_requests_total",
                    operation_name="Shared",
                )

        # every scrape adds up both workers, whichever answers it (counted as each response ends)
        until_sync(lambda: scraped() == sent, lambda: f"{sent} counted, scraped {scraped()}")
        assert all(scraped() == sent for _ in range(4))
    assert "startup failed" not in server.output().lower(), server.output()
