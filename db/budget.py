"""The cost budget's storage: points spent per bucket and fixed window, in ``cost_budget`` or in Redis.

The policy (prices, free operations, dry runs, refusals) is ``graph/admission/budget.py``'s.

Storage: one row per bucket and window in ``cost_budget``; a charge is one statement, an atomic
upsert that adds the cost only while the sum stays within the budget (``INSERT ... ON CONFLICT
DO UPDATE ... WHERE ... RETURNING used``; SQLite 3.35+ and PostgreSQL), in autocommit, so
concurrent processes can never overspend. Every ``PRUNE_EVERY``-th charge of a process also
deletes past windows.

On SQLite, where a process's writes queue behind one lock, charges are group-committed
(``Database.write``): the charges and other writes that arrive while one trip to the database
is under way go together in the next, each still its own transaction. Before this, every
request held the write lock for a whole trip through a busy event loop, and that lock, not
SQLite, capped the whole server's throughput (Q1: 669 rps with the budget on against 982 with
it off).

Leases: a charge that reaches the table takes, when it fits, ``points // LEASE_SHARE`` points
beyond its cost, and the process spends them on the bucket's next charges of the same window
without a statement (exactly, on one event loop: the lease is checked and spent synchronously).
This is how a distributed rate limiter keeps its hot counters off the store (Google's Doorman
hands out capacity leases; Envoy's and Redis Cell's local token buckets draw from a shared one):
a client sending 60 one-point queries spends about one statement on them instead of 60, so a
read no longer writes to the primary database on every request. What it costs, and why that is
fine: the table may count up to ``points // LEASE_SHARE`` points per process per bucket that are
not spent yet (the ``rateLimit`` field and headers of that process subtract them, so one process
reports exactly; with several, each knows the others' spending as of its last lease), and a
process that stops strands its unspent lease until the window ends. Budgets under
``LEASE_SHARE`` points are never leased: every charge is its own statement, as before.

With ``CONDUIT_CACHE_URL`` set, ``RedisBudgetStore`` keeps the same counts in Redis instead, so
no request writes to the primary database to be admitted (issue 13: on PostgreSQL the charge was
a write transaction per read, and one hot row per client address behind a NAT). Both stores
answer alike: same windows, same refusals, same ``used`` and ``reset_at``; the admission step
cannot tell them apart, except that the Redis store may raise ``BudgetUnavailable``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import sqlalchemy as sa

from db.dialect import Compiled, DriverDialect, bind, compile_statement
from db.driver_sql import CHARGE_BUDGET
from db.engine import Database
from db.models import cost_budget_table as budget_rows
from db.models import sqlite_timestamp, utcnow
from db.redis import UNAVAILABLE, RedisClient

PRUNE_EVERY = 1000
"""One charge in this many that reach the table (per process) also deletes the rows of past windows."""

LEASE_SHARE = 64
"""A charge reaching the table leases ``points // LEASE_SHARE`` points beyond its cost (module docstring)."""

MAX_LEASES = 65536
"""Buckets whose leases one process keeps; beyond it the oldest lease is dropped (its points stay counted)."""


class _Lease:
    """Points of ``start``'s window this process has charged to a bucket but not spent yet.

    ``used``: the table's count after the last statement; ``remaining``: what is left of the
    leases, so the bucket has spent ``used - remaining`` as far as this process knows.
    """

    __slots__ = ("remaining", "start", "used")

    def __init__(self, start: dt.datetime, used: int, remaining: int) -> None:
        self.start = start
        self.used = used
        self.remaining = remaining


def now() -> dt.datetime:
    """The budget's clock (UTC, aware): what windows and ``retryAfter`` are computed from; tests pin it."""
    return utcnow()


_windows: dict[int, tuple[dt.datetime, dt.datetime]] = {}  # the last window ``window_of`` gave, by length


def window_of(now: dt.datetime, window_seconds: int) -> tuple[dt.datetime, dt.datetime]:
    """Start and end (UTC) of the ``window_seconds``-long window holding ``now``, aligned on the Unix epoch."""
    # every admitted request asks; most ask within the window the previous one did
    last = _windows.get(window_seconds)
    if last is not None and now.tzinfo is not None and last[0] <= now < last[1]:
        return last
    seconds = int(now.timestamp())
    start = seconds - seconds % window_seconds
    begin = dt.datetime.fromtimestamp(start, dt.UTC)
    window = _windows[window_seconds] = (begin, begin + dt.timedelta(seconds=window_seconds))
    return window


class BudgetUnavailable(Exception):
    """The store could not be reached: nothing was charged or read (``RedisBudgetStore``)."""


class Budget(Protocol):
    """What the admission step needs of a store: ``BudgetStore`` or ``RedisBudgetStore``."""

    points: int
    window_seconds: int

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (UTC) of the window holding ``now``."""
        ...

    async def charge(self, bucket: str, cost: int) -> tuple[int | None, dt.datetime]:
        """Spend ``cost`` points of ``bucket`` if they fit: the sum after (``None``: refused), the window's end."""
        ...

    async def peek(self, bucket: str) -> tuple[int, dt.datetime]:
        """What ``bucket`` has spent in the current window and the window's end, charging nothing."""
        ...


class BudgetStore:
    """Points per bucket per fixed window in the ``cost_budget`` table (see the module docstring).

    ``points``: the budget of one bucket per window; ``window_seconds``: the window's length.
    """

    def __init__(self, db: Database, points: int, window_seconds: int) -> None:
        self.db = db
        self.points = points
        self.window_seconds = window_seconds
        self._charges = 0
        self._leases: dict[str, _Lease] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (UTC) of the window holding ``now``."""
        return window_of(now, self.window_seconds)

    async def charge(self, bucket: str, cost: int) -> tuple[int | None, dt.datetime]:
        """Spend ``cost`` points of ``bucket`` if they fit: from this process's lease, else in the table.

        Returns what the bucket has spent in the window after the charge (``None`` when the cost
        did not fit: nothing was charged) and the window's end (UTC). In the table it is one
        statement, two when a lease does not fit and the cost alone is tried (module docstring).
        """
        start, reset_at = self.window(now())
        if cost > self.points:  # can never fit: the insert below would store it anyway
            return None, reset_at
        while True:
            lease = self._leases.get(bucket)
            if lease is not None and lease.start == start and lease.remaining >= cost:
                lease.remaining -= cost  # no await between the check and the spending
                return lease.used - lease.remaining, reset_at
            pending = self._pending.get(bucket)
            if pending is None:
                break
            # another charge of this bucket is at the table: its lease may cover this one too
            await asyncio.shield(pending)
        pending = asyncio.get_running_loop().create_future()
        self._pending[bucket] = pending
        try:
            return await self._charge_table(bucket, cost, start), reset_at
        finally:
            del self._pending[bucket]
            pending.set_result(None)

    async def _charge_table(self, bucket: str, cost: int, start: dt.datetime) -> int | None:
        extra = self.points // LEASE_SHARE
        lease = min(self.points, cost + extra)
        # a refused lease is retried with the cost alone: near the end of the budget, only it fits
        tries = [lease, cost] if lease > cost else [cost]
        if self.db.is_sqlite:
            # group-committed with the process's other writes (Database.write); the window as
            # SQLAlchemy stores it on SQLite, so its own reads of the table match
            window = sqlite_timestamp(start)
            sql = _charge_sql(True)

            def retry(results: list[list[Any]]) -> list[tuple[str, list[Any]]]:
                # a charge that does not fit changes nothing: committing it is harmless
                return [(sql, [bucket, window, cost, self.points])] if not results[-1] and len(tries) > 1 else []

            results = await self.db.write([(sql, [bucket, window, tries[0], self.points])], retry) or [[]]
        else:
            # autocommit: each statement is its own transaction, committed at once
            # not retried on a broken connection: the server may have charged already
            results = []
            for amount in tries:
                results += await self.db.fetch_raw(
                    [(_charge_sql(False), [bucket, start, amount, self.points])], retry=False
                )
                if results[-1]:
                    break
        rows = results[-1]
        self._charges += 1
        if self._charges % PRUNE_EVERY == 0:
            async with self.db.serialized_write(), self.db.reads.connect() as connection:
                await connection.execute(sa.delete(budget_rows).where(budget_rows.c.window_start < start))
        if not rows:
            return None
        used = int(rows[0][0])
        granted = tries[len(results) - 1]
        held = self._leases.pop(bucket, None)  # re-inserted: the dict's order is the leases' age
        remaining = granted - cost + (held.remaining if held is not None and held.start == start else 0)
        if remaining:
            if len(self._leases) >= MAX_LEASES:
                del self._leases[next(iter(self._leases))]
            self._leases[bucket] = _Lease(start, used, remaining)
        return used - remaining

    async def peek(self, bucket: str) -> tuple[int, dt.datetime]:
        """What ``bucket`` has spent in the current window and the window's end, charging nothing (one read).

        This process's unspent lease is not spent: it is subtracted from the table's count.
        """
        start, reset_at = self.window(now())
        is_sqlite = self.db.is_sqlite
        values = {"bucket": bucket, "window": DriverDialect(is_sqlite).bind_time(start)}
        # driver SQL, as the charge: a free operation (``{ __typename }``, ``rateLimit``) peeks on
        # every request, and a session's round trip cost it more than a priced query's whole answer
        (rows,) = await self.db.fetch_raw([bind(_peek_statement(is_sqlite), values)])
        used = int(rows[0][0]) if rows else 0
        return max(0, used - self.unspent(bucket, start)), reset_at

    def unspent(self, bucket: str, start: dt.datetime) -> int:
        """Points of ``bucket``'s window beginning at ``start`` this process has leased and not spent."""
        lease = self._leases.get(bucket)
        return lease.remaining if lease is not None and lease.start == start else 0


@functools.cache
def _peek_statement(is_sqlite: bool) -> Compiled:
    """The peek's read, compiled for the driver once: parameters ``bucket`` and ``window`` (bound
    with ``DriverDialect.bind_time``); ``(used,)`` or no row."""
    rows = budget_rows.c
    statement = sa.select(rows.used).where(
        rows.bucket == sa.bindparam("bucket"), rows.window_start == sa.bindparam("window")
    )
    return compile_statement(statement, is_sqlite)


@functools.cache
def _charge_sql(is_sqlite: bool) -> str:
    """The charge's upsert in the driver's dialect (run through ``Database.fetch_raw``: compiling
    the same SQLAlchemy statement on every request cost more than running it)."""
    sql, names = DriverDialect(is_sqlite).render(CHARGE_BUDGET)
    if names != ["bucket", "window", "cost", "points"]:  # the callers pass the values in this order
        raise ValueError(f"CHARGE_BUDGET's parameters changed: {names}")
    return sql


CHARGE_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return false
end
used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return used
"""
"""``KEYS[1]``: the bucket's key for the window; ``ARGV``: cost, points, milliseconds to the window's
end. Adds the cost only while the sum stays within the points, like ``CHARGE_BUDGET``'s upsert, and
returns the new sum (nil when refused: the count is left as it was). A script runs atomically in
Redis, so concurrent charges from any number of processes can never overspend."""

KEY_PREFIX = "conduit:budget:"


class RedisBudgetStore:
    """Points per bucket per fixed window in Redis (``CONDUIT_CACHE_URL``; the module docstring).

    One key per bucket and window, ``conduit:budget:<window start, Unix seconds>:<bucket>``, holding
    the points spent; one round trip per charge (``CHARGE_SCRIPT``, through ``EVALSHA``; redis-py
    loads the script when Redis does not know it yet: after a start or restart, three) or peek
    (``GET``). Each charge sets the key to expire at the window's end, as a time to live computed
    from the budget's clock (``now``) rather than an absolute ``PEXPIREAT``: a Redis host whose
    clock disagrees with the app's then cannot end a window early, and past windows need no
    pruning. Windows are the database store's (``window_of``), so either store reads the same.

    Raises ``BudgetUnavailable`` when Redis does not answer (or is paused after a failure: see
    ``db/redis.py``), having reported it with ``RedisClient.unavailable(USE)``.
    """

    USE = "budget"

    def __init__(self, redis: RedisClient, points: int, window_seconds: int) -> None:
        self.redis = redis
        self.points = points
        self.window_seconds = window_seconds
        self._charge = redis.client.register_script(CHARGE_SCRIPT)

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (UTC) of the window holding ``now`` (the database store's windows)."""
        return window_of(now, self.window_seconds)

    @staticmethod
    def key(bucket: str, start: dt.datetime) -> str:
        """The Redis key of ``bucket``'s window beginning at ``start``."""
        return f"{KEY_PREFIX}{int(start.timestamp())}:{bucket}"

    async def charge(self, bucket: str, cost: int) -> tuple[int | None, dt.datetime]:
        """Spend ``cost`` points of ``bucket`` if they fit, in one round trip; as ``BudgetStore.charge``.

        Raises ``BudgetUnavailable`` (nothing charged, as far as this process knows).
        """
        moment = now()
        start, reset_at = window_of(moment, self.window_seconds)
        if cost > self.points:  # can never fit
            return None, reset_at
        ttl_ms = max(1, math.ceil((reset_at - moment).total_seconds() * 1000))
        used = await self._call(lambda: self._charge(keys=[self.key(bucket, start)], args=[cost, self.points, ttl_ms]))
        return (int(used) if used is not None else None), reset_at

    async def peek(self, bucket: str) -> tuple[int, dt.datetime]:
        """What ``bucket`` has spent in the current window and the window's end, in one ``GET``.

        Raises ``BudgetUnavailable``.
        """
        start, reset_at = window_of(now(), self.window_seconds)
        used = await self._call(lambda: self.redis.client.get(self.key(bucket, start)))
        return int(used or 0), reset_at

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self.redis.available:  # paused after a failure: not tried
            self.redis.unavailable(self.USE)
            raise BudgetUnavailable
        try:
            result = await call()
        except UNAVAILABLE as error:
            self.redis.unavailable(self.USE, error)
            raise BudgetUnavailable from error
        self.redis.answered()
        return result
