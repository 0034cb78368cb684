"""One ``POST /graphql`` straight through an ASGI app, for the in-process measurements.

``bench/inprocess.py``, ``bench/shapes.py``, ``bench/tracing.py`` and ``bench/reset_timing.py``
drive the app without an HTTP server (uvicorn's parsing is not in their figures).
"""

from __future__ import annotations

import asyncio
from typing import Any


async def post_graphql(
    app: Any,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] = ("127.0.0.1", 40000),
) -> list[dict[str, Any]]:
    """Send ``body`` (a JSON request) as ``POST /graphql`` from ``client``; the ASGI messages the app sent."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # a client that stays connected
        return {"type": "http.disconnect"}

    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), *(headers or [])],
        "client": client,
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return out


def response_body(messages: list[dict[str, Any]]) -> bytes:
    """The body of a response's ASGI messages."""
    return b"".join(message.get("body", b"") for message in messages if message["type"] == "http.response.body")
