"""``RateLimit``: the viewer's cost budget as the current operation left it (GitHub's ``rateLimit`` shape)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

from graph.cache_control import CacheControl, CacheControlScope


@strawberry.type(
    name="RateLimit",
    directives=[CacheControl(max_age=0, scope=CacheControlScope.PRIVATE)],
    description="The cost budget of the viewer (or of the client address, when anonymous) in the current window.",
)
class RateLimitType:
    cost: int = strawberry.field(
        description="Points this operation costs: its node count / 100, rounded up, at least 1; "
        "0 for an operation that selects only rateLimit."
    )
    limit: int = strawberry.field(description="Points per window.")
    remaining: int = strawberry.field(description="Points left in the window after this operation.")
    reset_at: dt.datetime = strawberry.field(description="When the window ends and the budget is whole again.")
    used: int = strawberry.field(description="Points spent in the window, this operation included.")


def rate_limit_of(context: Any) -> RateLimitType | None:
    """The ``rateLimit`` field's value from ``context.rate_limit`` (set by graph/admission/budget.py).

    Reads nothing but the context, so planned SQL (``graph/execution/planned/roots.py`` calls it
    with the context alone) gives the same answer. ``None`` when the budget is off.
    """
    status = getattr(context, "rate_limit", None)
    if status is None or status.used is None:
        return None
    return RateLimitType(
        cost=status.cost, limit=status.limit, remaining=status.remaining, reset_at=status.reset_at, used=status.used
    )
