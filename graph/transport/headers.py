"""Security headers on every HTTP response, and the Content-Security-Policy of the playground.

A pure ASGI middleware (no response buffering, so streaming and large bodies pass through),
added outermost by ``create_app`` so even a 500 or a CORS preflight answer carries the headers.
A header the endpoint set itself is left alone: the playground sets its own, looser,
``Content-Security-Policy`` (``PLAYGROUND_CSP``); every other response gets ``DEFAULT_CSP``, which
allows nothing, since JSON is never meant to be rendered, framed or run.

Sources: OWASP Secure Headers Project (the header set and values); CSP Level 3
(``frame-ancestors``, and ``'self'`` matching same-host ``ws:``/``wss:`` for the playground's
subscriptions, as Chromium 71+, Firefox and Safari 16+ implement it); RFC 6797 (HSTS, sent in
production only, where TLS is expected in front of the server).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"

# As tight as the vendored GraphiQL 3 page allows (graph/static/graphiql.html), checked in
# headless Chromium with no violation while running queries and a subscription and opening the
# docs, history, explorer and settings panels. Every script and stylesheet is a file of ours, so
# no 'unsafe-inline' and no 'unsafe-eval' (the bundle's one `new Function` is webpack's
# globalThis fallback, never reached in a browser that has globalThis). data: for the icons and
# fonts graphiql.min.css inlines. The one hash is the <style> element react-remove-scroll (inside
# GraphiQL's dialogs) inserts when a dialog opens; its text is fixed because playground.css
# gives the body no margin and no scrollbar. A GraphiQL upgrade may change it: the browser then
# logs a violation and skips a style the page does not need.
DIALOG_STYLE_HASH = "'sha256-Y/huXlwoYkVyQlxwSVcCi1RCDGDCSVBzDt0hYP9qlTc='"
PLAYGROUND_CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {DIALOG_STYLE_HASH}; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# One year; no includeSubDomains, as this server cannot speak for its sibling hosts.
HSTS = "max-age=31536000"

# Powerful features no page of ours uses; features a browser does not know would log warnings.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
)

# Versioned, public assets may be cached; everything else (GraphQL answers, which may be a
# viewer's own data, health and metrics) must not be kept by browsers or shared caches.
CACHEABLE_PREFIX = "/static/"


class SecurityHeadersMiddleware:
    """Adds the security headers above to every HTTP response, unless the response set them.

    ``production`` adds ``Strict-Transport-Security``. WebSocket and lifespan traffic pass
    through untouched.
    """

    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        headers = list(COMMON_HEADERS)
        if production:
            headers.append(("Strict-Transport-Security", HSTS))
        headers.append(("Content-Security-Policy", DEFAULT_CSP))
        self.headers = tuple(headers)
        # as ASGI sends them (lowercase latin-1 bytes), with and without Cache-Control
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self._cacheable = tuple(encoded)
        self._not_cacheable = (*encoded, (b"cache-control", b"no-store"))
        self._names = frozenset(name for name, _value in self._not_cacheable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = self._cacheable if scope["path"].startswith(CACHEABLE_PREFIX) else self._not_cacheable

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # each default only where the response has not set that header itself
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _value in headers}
                if present.isdisjoint(self._names):  # the common case: no default is overridden
                    headers.extend(defaults)
                else:
                    headers.extend(header for header in defaults if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
