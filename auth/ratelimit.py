"""Sliding-window rate limits kept in the database (shared by every server process)."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import rate_limit_event_table as events
from db.models import utcnow


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``window`` in one bucket."""

    count: int
    window: dt.timedelta


LOGIN_FAILURES_PER_EMAIL = Limit(10, dt.timedelta(minutes=15))
LOGIN_FAILURES_PER_ADDRESS = Limit(50, dt.timedelta(minutes=15))
REGISTRATIONS_PER_ADDRESS = Limit(100, dt.timedelta(hours=1))
REFRESHES_PER_ADDRESS = Limit(60, dt.timedelta(minutes=15))
# requestPasswordReset counts every request, known address or not (contract-next README)
RESET_REQUESTS_PER_EMAIL = Limit(5, dt.timedelta(hours=1))
RESET_REQUESTS_PER_ADDRESS = Limit(20, dt.timedelta(hours=1))
# requestEmailVerification: a viewer cannot make the server mail their inbox without end
VERIFICATION_REQUESTS_PER_USER = Limit(5, dt.timedelta(hours=1))


async def retry_after(session: AsyncSession, bucket: str, limit: Limit) -> int | None:
    """Seconds until ``bucket`` is under ``limit`` again, or ``None`` if it is under it now."""
    now = utcnow()
    since = now - limit.window
    rows = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(events.c.created_at)).where(
                events.c.bucket == bucket, events.c.created_at > since
            )
        )
    ).one()
    count: int = rows[0]
    oldest: dt.datetime = rows[1]
    if count < limit.count:
        return None
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(1, math.ceil((oldest + limit.window - now).total_seconds()))  # whole seconds, at least 1


PRUNE_EVERY = 200
"""About one ``record`` call in this many also deletes expired events, so the table stays small."""


async def record(session: AsyncSession, *buckets: str) -> None:
    """Count one event in each of ``buckets`` (within the caller's transaction)."""
    now = utcnow()
    await session.execute(sa.insert(events), [{"bucket": bucket, "created_at": now} for bucket in buckets])
    if random.randrange(PRUNE_EVERY) == 0:  # noqa: S311 - when to prune, not a secret
        await prune(session)


async def prune(session: AsyncSession, older_than: dt.timedelta = dt.timedelta(days=1)) -> None:
    """Delete events older than ``older_than`` (longer than every window, so no count changes)."""
    await session.execute(sa.delete(events).where(events.c.created_at < utcnow() - older_than))
