"""Sliding-window rate limits (failed logins, registrations, refreshes), shared by every server process.

Callers use two functions, whatever keeps the counts: ``retry_after(session, bucket, limit)``
before the guarded action and ``record(session, *buckets)`` to count one. Events are counted in
one of two stores:

- ``DatabaseCounters`` (the default): one row per event in ``rate_limit_event``, written within
  the caller's transaction (a rolled-back action is not counted).
- ``RedisCounters`` (with ``CONDUIT_CACHE_URL``): a sorted set per bucket, one member per event
  scored by its time in milliseconds, so nothing is written to the primary database. An event is
  counted at once, outside the caller's transaction: an action that fails after ``record`` (a
  registration that loses a race for its username) still counts, which only errs towards limiting.
  When Redis does not answer, the counts fall back to the database store for that call
  (``db/redis.py`` logs the outage once and counts it, ``conduit_redis_unavailable_total{use=
  "auth_limits"}``): these limits guard passwords, and an outage must not lift them. Events counted
  in the database during an outage are not seen once Redis answers again, so a limit may
  allow up to twice its count across an outage.

The store is chosen per session (``use_counters``, which ``graph/context.py`` calls on every
request's session), so the callers' code is the same for both; the session is read only by the
database store. Both use the app's clock (``utcnow``), so both count the same windows.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import secrets
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import rate_limit_event_table as events
from db.models import utcnow
from db.redis import UNAVAILABLE, RedisClient


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

KEEP = dt.timedelta(days=1)
"""How long events are kept: longer than every window, so pruning changes no count."""


class Counters(Protocol):
    """A store of events per bucket (module docstring)."""

    async def retry_after(self, session: AsyncSession, bucket: str, limit: Limit) -> int | None:
        """Whole seconds (at least 1) until ``bucket`` is under ``limit`` again, or ``None`` if it is under it now."""
        ...

    async def record(self, session: AsyncSession, *buckets: str) -> None:
        """Count one event now in each of ``buckets``."""
        ...


def _wait(oldest: dt.datetime, limit: Limit, now: dt.datetime) -> int:
    """Whole seconds, at least 1, until the event at ``oldest`` leaves ``limit``'s window."""
    return max(1, math.ceil((oldest + limit.window - now).total_seconds()))


PRUNE_EVERY = 200
"""About one ``record`` call in this many also deletes expired events, so the table stays small."""


class DatabaseCounters:
    """Events as rows of ``rate_limit_event``, within the caller's transaction on ``session``."""

    async def retry_after(self, session: AsyncSession, bucket: str, limit: Limit) -> int | None:
        """As ``Counters.retry_after``: one ``SELECT count(*), min(created_at)``."""
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
        return _wait(oldest, limit, now)

    async def record(self, session: AsyncSession, *buckets: str) -> None:
        """As ``Counters.record``: one row per bucket; now and then also prunes (``PRUNE_EVERY``)."""
        now = utcnow()
        await session.execute(sa.insert(events), [{"bucket": bucket, "created_at": now} for bucket in buckets])
        if random.randrange(PRUNE_EVERY) == 0:  # noqa: S311 - when to prune, not a secret
            await prune(session)


KEY_PREFIX = "conduit:limit:"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


class RedisCounters:
    """Events in Redis, a sorted set per bucket (``conduit:limit:<bucket>``); module docstring.

    ``retry_after`` is one round trip (a transaction of ``ZREMRANGEBYSCORE`` of the events past
    the window, ``ZCARD`` and ``ZRANGE`` of the oldest); ``record`` one too (per bucket ``ZADD``,
    ``ZREMRANGEBYSCORE`` past ``KEEP`` and ``PEXPIRE`` ``KEEP``, so an idle bucket disappears).
    When Redis does not answer, both fall back to ``fallback`` with the caller's session.
    """

    USE = "auth_limits"

    def __init__(self, redis: RedisClient, fallback: Counters | None = None) -> None:
        self.redis = redis
        self.fallback: Counters = fallback or DatabaseCounters()

    async def retry_after(self, session: AsyncSession, bucket: str, limit: Limit) -> int | None:
        """As ``Counters.retry_after``."""
        if not self.redis.available:
            self.redis.unavailable(self.USE)
            return await self.fallback.retry_after(session, bucket, limit)
        now = utcnow()
        key = KEY_PREFIX + bucket
        try:
            async with self.redis.client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", _ms(now - limit.window))
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
                _removed, count, oldest = await pipe.execute()
        except UNAVAILABLE as error:
            self.redis.unavailable(self.USE, error)
            return await self.fallback.retry_after(session, bucket, limit)
        self.redis.answered()
        if count < limit.count:
            return None
        oldest_at = dt.datetime.fromtimestamp(oldest[0][1] / 1000, dt.UTC)
        return _wait(oldest_at, limit, now)

    async def record(self, session: AsyncSession, *buckets: str) -> None:
        """As ``Counters.record``."""
        if not self.redis.available:
            self.redis.unavailable(self.USE)
            await self.fallback.record(session, *buckets)
            return
        now = _ms(utcnow())
        keep = int(KEEP.total_seconds() * 1000)
        try:
            async with self.redis.client.pipeline(transaction=True) as pipe:
                for bucket in buckets:
                    key = KEY_PREFIX + bucket
                    # members are unique per event: two events in one millisecond are two members
                    pipe.zadd(key, {f"{now}:{secrets.token_hex(4)}": now})
                    pipe.zremrangebyscore(key, "-inf", now - keep)
                    pipe.pexpire(key, keep)
                await pipe.execute()
        except UNAVAILABLE as error:
            self.redis.unavailable(self.USE, error)
            await self.fallback.record(session, *buckets)
            return
        self.redis.answered()


DATABASE = DatabaseCounters()
COUNTERS_KEY = "conduit.rate_limit_counters"
"""The key of a session's ``info`` naming its counters (``use_counters``)."""


def use_counters(session: AsyncSession, counters: Counters) -> None:
    """Count ``session``'s events in ``counters`` (else in the database)."""
    session.info[COUNTERS_KEY] = counters


def counters_of(session: AsyncSession) -> Counters:
    """The counters ``use_counters`` gave ``session``, else ``DatabaseCounters``."""
    counters: Counters = session.info.get(COUNTERS_KEY, DATABASE)
    return counters


async def retry_after(session: AsyncSession, bucket: str, limit: Limit) -> int | None:
    """Seconds until ``bucket`` is under ``limit`` again, or ``None`` if it is under it now.

    Counted in ``session``'s counters (``use_counters``); whole seconds, at least 1.
    """
    return await counters_of(session).retry_after(session, bucket, limit)


async def record(session: AsyncSession, *buckets: str) -> None:
    """Count one event in each of ``buckets`` (in the database: within the caller's transaction)."""
    await counters_of(session).record(session, *buckets)


async def prune(session: AsyncSession, older_than: dt.timedelta = KEEP) -> None:
    """Delete events older than ``older_than`` from the database (longer than every window, so no count changes)."""
    await session.execute(sa.delete(events).where(events.c.created_at < utcnow() - older_than))
