"""gzip for HTTP responses of 1 KiB or more, when the client accepts it and no secret forbids it.

A pure ASGI middleware (``create_app`` puts it inside the security headers and the
observability middleware, so the access log and metrics see the status it sends). For each
HTTP response it decides from the response's own headers:

- compressed only when ``Accept-Encoding`` accepts ``gzip`` (RFC 9110, 12.5.3: ``q=0`` refuses
  it, ``*`` accepts it unless listed), the body is ``MINIMUM_SIZE`` bytes or more (or streamed),
  and its media type is text-like (``COMPRESSIBLE``: JSON, GraphQL responses, text, scripts,
  SVG); never ``HEAD``, partial (206), 204 or 304 responses, nor one already encoded;
- never when the response says ``Cache-Control: no-transform`` (RFC 9111, 5.2.2.6): the
  GraphQL endpoint sends it on answers that hold a credential (``graph/transport/secrets.py``,
  BREACH), and it tells a proxy or CDN in front not to compress them either;
- ``Vary: Accept-Encoding`` (RFC 9110, 12.5.5) on every response whose encoding depended on
  the header, compressed or not, so a shared cache never serves gzip to a client that did not
  ask for it;
- a compressed static file loses ``Accept-Ranges`` and its ``ETag`` becomes weak: both
  described the identity file;
- ``Content-Length`` is recomputed for a whole body, dropped for a streamed one (each chunk is
  flushed as it comes, so streaming is not delayed); bodies of ``THREAD_MINIMUM_SIZE`` or more
  are compressed in a worker thread, off the event loop.

WebSocket and lifespan traffic pass through. Static files (the GraphiQL page and its assets)
are compressed like any text: they hold no secret and reflect nothing. ``/metrics`` on its own
listener (``CONDUIT_METRICS_PORT``) is prometheus-client's, which compresses by itself.

gzip only, for now: brotli (Google's ``brotli`` bindings on PyPI, maintained) typically shrinks
JSON a further 10-20% at low qualities, which browsers would use (they send ``br`` over HTTPS,
and the balancer passes ``Accept-Encoding`` on), but gzip already takes most of the saving,
every client and scraper speaks it, and brotli would add a C extension to both locks.
``ENCODINGS`` is where a second coding goes (a compressor object with ``compress`` and
``flush``), and ``accepted_encoding`` already weighs several.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MINIMUM_SIZE = 1024
"""Bytes below which a body is sent as it is: the gzip header and lost CPU outweigh the saving."""

THREAD_MINIMUM_SIZE = 128 * 1024
"""Bodies (or chunks) this large are compressed in a worker thread: about a millisecond per 100 KiB."""

LEVEL = 4
"""Measured on the schema's introspection answer (55 KB of JSON): level 4 comes within 10% of
level 6's size for about a third of its CPU, and level 9 costs twice level 6 for 2% more."""

NO_TRANSFORM = "no-transform"

COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/graphql-response+json",
        "application/javascript",
        "application/xml",
        "image/svg+xml",
    }
)
"""Media types worth compressing, besides every ``text/*`` and ``+json`` type."""


def _gzip() -> zlib._Compress:
    return zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: the gzip wrapper (RFC 1952)


ENCODINGS: dict[str, Callable[[], zlib._Compress]] = {"gzip": _gzip}
"""Content codings this server produces, by name, each with its compressor's factory."""


def gzip_body(body: bytes) -> bytes:
    """``body`` gzip-compressed whole, as this middleware compresses a response (``LEVEL``)."""
    compressor = _gzip()
    return compressor.compress(body) + compressor.flush(zlib.Z_FINISH)


def accepted_encoding(accept_encoding: str | None) -> str | None:
    """The content coding to use for a client's ``Accept-Encoding`` value, or ``None`` for identity.

    RFC 9110, 12.5.3: codings with a ``q`` weight (default 1, ``0`` means not acceptable), ``*``
    for any coding not listed; ``x-gzip`` is ``gzip``. No header means no preference: identity.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        coding = coding.strip().lower()
        if coding == "x-gzip":
            coding = "gzip"
        weight = 1.0
        name, _, value = parameters.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                weight = 0.0  # a malformed weight accepts nothing rather than guessing
        if coding:
            weights[coding] = weight
    best: tuple[float, str] | None = None
    for coding in ENCODINGS:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, coding)
    return best[1] if best is not None else None


def compressible(content_type: str) -> bool:
    """Whether a ``Content-Type`` value names a text-like media type (``COMPRESSIBLE``, ``text/*``, ``+json``)."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type in COMPRESSIBLE or media_type.startswith("text/") or media_type.endswith("+json")


@functools.lru_cache(maxsize=256)
def _eligible_type(content_type: bytes, cache_control: bytes) -> bool:
    """Whether a response with these raw header values may be compressed: a text-like type, no
    ``no-transform``. Remembered: responses repeat a handful of pairs, chosen by this server."""
    if not compressible(content_type.decode("latin-1")):
        return False
    directives = {part.strip().lower() for part in cache_control.decode("latin-1").split(",")}
    return NO_TRANSFORM not in directives


def _add_vary(raw: list[tuple[bytes, bytes]]) -> None:
    """Add ``Accept-Encoding`` to the ``Vary`` of raw ASGI headers (lower-case names), as
    ``MutableHeaders.add_vary_header`` does."""
    for index, (name, value) in enumerate(raw):
        if name == b"vary":
            raw[index] = (name, value + b", Accept-Encoding")
            return
    raw.append((b"vary", b"Accept-Encoding"))


class CompressionMiddleware:
    """gzip for eligible HTTP responses (module docstring); ``minimum_size`` in bytes."""

    def __init__(self, app: ASGIApp, *, minimum_size: int = MINIMUM_SIZE) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = None
        if scope["method"] != "HEAD":  # a HEAD answer has no body to compress and must match GET's headers
            # the raw headers (ASGI: lower-case names), as every request passes here
            accept = b", ".join(value for name, value in scope["headers"] if name == b"accept-encoding")
            encoding = accepted_encoding(accept.decode("latin-1"))
        responder = _Responder(send, encoding, self.minimum_size)
        await self.app(scope, receive, responder.send)


class _Responder:
    """One response's way through the middleware: holds ``http.response.start`` until the first
    body chunk shows whether the body is large enough."""

    def __init__(self, send: Send, encoding: str | None, minimum_size: int) -> None:
        self._send = send
        self.encoding = encoding
        self.minimum_size = minimum_size
        self.start: Message | None = None
        self.passthrough = False
        self.compressor: zlib._Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._eligible(message):
                self.start = message  # sent with the first body chunk
            else:
                self.passthrough = True
                await self._send(message)
            return
        if self.passthrough or kind != "http.response.body":
            # pathsend (a file the server sends itself), trailers, early hints: as they are
            if self.start is not None:
                start, self.start = self.start, None
                await self._send(start)
            await self._send(message)
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.start is not None:
            start, self.start = self.start, None
            if len(body) < self.minimum_size and not more_body:
                self.passthrough = True  # small: identity for every client, so no Vary either
                await self._send(start)
                await self._send(message)
                return
            if self.encoding is None:
                _add_vary(start["headers"])  # the raw list: this path is every large identity answer
                self.passthrough = True
                await self._send(start)
                await self._send(message)
                return
            headers = MutableHeaders(raw=start["headers"])
            headers.add_vary_header("Accept-Encoding")
            self.compressor = ENCODINGS[self.encoding]()
            headers["Content-Encoding"] = self.encoding
            # byte ranges would address the identity file, not this encoding of it (RFC 9110, 14.3)
            del headers["Accept-Ranges"]
            etag = headers.get("etag")
            if etag is not None and not etag.startswith("W/"):
                # a strong validator names one exact representation (RFC 9110, 8.8.1); as nginx does
                headers["ETag"] = f"W/{etag}"
            body = await self._compress(body, more_body)
            if more_body:
                del headers["Content-Length"]
            else:
                headers["Content-Length"] = str(len(body))
            await self._send(start)
        else:
            body = await self._compress(body, more_body)
        await self._send({**message, "body": body})

    def _eligible(self, start: Message) -> bool:
        status = start["status"]
        if status < 200 or status in (204, 206, 304) or start.get("trailers", False):
            return False
        raw = start["headers"] = list(start.get("headers", ()))  # mutable, for MutableHeaders later
        # the raw headers (ASGI: lower-case names) rather than a Headers object: every response passes here
        content_type = cache_control = b""
        for name, value in raw:
            if name == b"content-encoding":
                return False
            if name == b"content-type":
                content_type = value
            elif name == b"cache-control":
                cache_control = value
        return _eligible_type(content_type, cache_control)

    async def _compress(self, body: bytes, more_body: bool) -> bytes:
        if len(body) >= THREAD_MINIMUM_SIZE:
            return await anyio.to_thread.run_sync(self._compress_now, body, more_body)
        return self._compress_now(body, more_body)

    def _compress_now(self, body: bytes, more_body: bool) -> bytes:
        if self.compressor is None:
            raise RuntimeError("compressing before the response started")
        # a streamed chunk is flushed whole, so the client can decode it on arrival
        return self.compressor.compress(body) + self.compressor.flush(zlib.Z_SYNC_FLUSH if more_body else zlib.Z_FINISH)
