"""Rate-limit headers on GraphQL-over-HTTP responses, with GitHub's names.

GitHub's REST and GraphQL APIs send these on every response ("Rate limits and query limits for
the GraphQL API", "Checking the status of your rate limit"); clients such as Octokit's throttling
plugin read them to pace themselves without spending an operation on the ``rateLimit`` field:

- ``X-RateLimit-Limit``: the budget's points per window (``CONDUIT_RATE_LIMIT_POINTS``);
- ``X-RateLimit-Remaining``: points left in the window after this operation; ``0`` when the
  operation was refused for its cost (as the ``rateLimit`` field reports it then);
- ``X-RateLimit-Used``: points the bucket has spent in the window after this operation; left out
  when the operation was refused for its cost, since the refusing statement does not read it;
- ``X-RateLimit-Reset``: the end of the window, in whole seconds since the Unix epoch (UTC);
- ``X-RateLimit-Resource``: ``graphql``.

The values are what the budget step (``graph/admission/budget.py``) left on the context: its
one statement already returns them, so the headers cost no SQL. A response that ends before the
budget step (a request, parse or validation error, an invalid token) carries what is known
without a statement: the limit, the reset and the resource, not the remaining and used points.
With the budget off (``CONDUIT_RATE_LIMIT_POINTS=0``) there is no limit to report and no header.

``Retry-After`` (RFC 9110, 10.2.3: delay-seconds) goes on every response with a ``RATE_LIMITED``
error, from the error's ``extensions.retryAfter``: the budget's refusal and the login,
registration and refresh limits alike. The status code stays what GraphQL over HTTP gives (200
under ``application/json``); the header is advice, not a different outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from db import budget as clock

if TYPE_CHECKING:
    from starlette.responses import Response

    from db.budget import Budget
    from graph.admission.budget import RateLimitStatus

RESOURCE = "graphql"
LIMIT = "X-RateLimit-Limit"
REMAINING = "X-RateLimit-Remaining"
USED = "X-RateLimit-Used"
RESET = "X-RateLimit-Reset"
RESOURCE_HEADER = "X-RateLimit-Resource"
RETRY_AFTER = "Retry-After"

_RAW_NAMES = {name: name.lower().encode() for name in (LIMIT, REMAINING, USED, RESET, RESOURCE_HEADER)}

EXPOSED_HEADERS = (LIMIT, REMAINING, USED, RESET, RESOURCE_HEADER, RETRY_AFTER)
"""The headers above, for ``Access-Control-Expose-Headers``: none is CORS-safelisted (Fetch standard),
so a browser's script could not read them otherwise."""


def rate_limit_headers(status: RateLimitStatus | None, budget: Budget | None) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers (module docstring) for a response.

    ``status`` is the budget step's outcome (``Context.rate_limit``), ``None`` when the response
    ends before that step; ``budget`` ``None`` (the budget is off) gives ``{}``.
    """
    if budget is None:
        return {}
    if status is None:
        _start, reset_at = budget.window(clock.now())
        return {LIMIT: str(budget.points), RESET: str(int(reset_at.timestamp())), RESOURCE_HEADER: RESOURCE}
    headers = {LIMIT: str(status.limit), REMAINING: str(status.remaining), RESET: str(int(status.reset_at.timestamp()))}
    if status.used is not None:
        headers[USED] = str(status.used)
    headers[RESOURCE_HEADER] = RESOURCE
    return headers


def append_rate_limit_headers(response: Response, status: RateLimitStatus | None, budget: Budget | None) -> None:
    """Add ``rate_limit_headers`` to ``response``: appended to its raw list, as no response sets them
    otherwise and ``MutableHeaders`` costs per header."""
    response.raw_headers += [
        (_RAW_NAMES[name], value.encode()) for name, value in rate_limit_headers(status, budget).items()
    ]


def retry_after(body: Mapping[str, Any]) -> int | None:
    """Seconds a client should wait: the largest ``retryAfter`` of the ``RATE_LIMITED`` errors in
    the GraphQL response ``body``, ``None`` when it has none."""
    seconds: int | None = None
    for error in body.get("errors") or ():
        extensions = error.get("extensions") if isinstance(error, Mapping) else None
        if not isinstance(extensions, Mapping) or extensions.get("code") != "RATE_LIMITED":
            continue
        value = extensions.get("retryAfter")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            seconds = value if seconds is None else max(seconds, value)
    return seconds
