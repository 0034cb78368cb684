"""A real uvicorn server on 127.0.0.1 in a background thread, for WebSocket and real-client tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from graph.app import create_app
from graph.observability.tracing import Tracing
from graph.settings import Settings
from tests.waiting import until_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_app(settings: Settings, tracing: Tracing | None = None) -> Iterator[tuple[str, Starlette]]:
    """Serve ``create_app(settings, tracing=tracing)`` until the block ends; yields ``http://127.0.0.1:PORT`` and the app.

    The app runs on the server thread's event loop: a test may read its state (the broker's
    subscriber count, say) but must not await anything of it.
    """
    port = free_port()
    app = create_app(settings, tracing=tracing)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the test server stopped while starting")
        return server.started

    until_sync(started, "the test server to start")
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` until the block ends; yields ``http://127.0.0.1:PORT``."""
    with live_app(settings) as (url, _app):
        yield url
