"""``/metrics`` on its own listener (``CONDUIT_METRICS_PORT``), off the public port.

With a port set, the public app has no ``/metrics`` route (404) and each server process serves
``/metrics`` on ``CONDUIT_METRICS_HOST`` (``127.0.0.1`` unless changed) and that port, so a
balancer in front of the public port needs no rule to hide it and Prometheus scrapes the
private address.

The server is prometheus-client's own: its WSGI app (``make_wsgi_app``: the text format, or
OpenMetrics when the scraper asks for it, ``name[]`` filters, gzip when accepted) on a
``wsgiref`` server in a daemon thread, so a scrape needs nothing of the event loop and still
answers while the loop is busy. The app's lifespan starts it (``create_app``), so it runs under
``conduit serve`` and under any other ASGI server alike.

Several workers (``conduit serve --workers N``): every worker binds the same port with
``SO_REUSEPORT`` (Linux gives each connection to one of them, and only to sockets of the same
user), and prometheus-client's multiprocess mode, which ``conduit serve`` turns on for workers,
makes every scrape add up all workers' counters whichever answers, as on the public port; the
pool and cache metrics are the answering worker's. A port another program holds makes the
start fail (``OSError`` from the lifespan), not pass unnoticed.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import anyio.to_thread
from prometheus_client import make_wsgi_app

from graph.observability.metrics import Metrics

logger = logging.getLogger("conduit")

PATH = "/metrics"


class _Server(ThreadingMixIn, WSGIServer):
    """A scrape per thread, the port shared with the other workers' listeners (Python 3.11+)."""

    daemon_threads = True
    allow_reuse_address = True
    allow_reuse_port = True


class _QuietHandler(WSGIRequestHandler):
    """No stderr line per scrape: the access log is for the public port."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _address_family(host: str, port: int) -> socket.AddressFamily:
    """IPv4 or IPv6, as ``host`` resolves (``::1`` and ``[::]`` style addresses are IPv6)."""
    family, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family


class MetricsListener:
    """prometheus-client's exposition of ``metrics`` on ``host``:``port`` (module docstring).

    ``start()`` binds (``OSError`` when it cannot) and serves in a daemon thread; ``stop()``
    closes the socket and waits for the thread. ``port`` ``0`` picks a free port (``address``).
    """

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not Found: metrics are on /metrics\n"]
        # the registry is read per scrape (multiprocess mode: the workers' files as they are now)
        app = make_wsgi_app(self.metrics.exposed_registry())
        body: Iterable[bytes] = app(environ, start_response)
        return body

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port; ``RuntimeError`` before ``start()``."""
        if self._server is None:
            raise RuntimeError("the metrics listener is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind and serve in a daemon thread; ``OSError`` when the address cannot be bound."""
        server_class = type("MetricsServer", (_Server,), {"address_family": _address_family(self.host, self.port)})
        self._server = make_server(
            self.host, self.port, self._app, server_class=server_class, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="conduit-metrics", daemon=True)
        self._thread.start()
        host, port = self.address
        logger.info("metrics on http://%s:%d%s", f"[{host}]" if ":" in host else host, port, PATH)

    async def stop(self) -> None:
        """Stop serving and close the socket (in a thread: ``shutdown`` waits out a poll interval)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        await anyio.to_thread.run_sync(server.shutdown)
        server.server_close()
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)
