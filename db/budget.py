"""The cost budget's storage: points spent per bucket and fixed window, in ``cost_budget``.

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
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import sqlalchemy as sa

from db.dialect import DriverDialect
from db.driver_sql import CHARGE_BUDGET
from db.engine import Database
from db.models import cost_budget_table as budget_rows
from db.models import sqlite_timestamp, utcnow

PRUNE_EVERY = 1000
"""One charge in this many (per process) also deletes the rows of past windows."""


def now() -> dt.datetime:
    """The budget's clock (UTC, aware): what windows and ``retryAfter`` are computed from; tests pin it."""
    return utcnow()


class BudgetStore:
    """Points per bucket per fixed window in the ``cost_budget`` table (see the module docstring).

    ``points``: the budget of one bucket per window; ``window_seconds``: the window's length.
    """

    def __init__(self, db: Database, points: int, window_seconds: int) -> None:
        self.db = db
        self.points = points
        self.window_seconds = window_seconds
        self._charges = 0

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (UTC) of the window holding ``now``."""
        seconds = int(now.timestamp())
        start = seconds - seconds % self.window_seconds
        begin = dt.datetime.fromtimestamp(start, dt.UTC)
        return begin, begin + dt.timedelta(seconds=self.window_seconds)

    async def charge(self, bucket: str, cost: int) -> tuple[int | None, dt.datetime]:
        """Spend ``cost`` points of ``bucket`` if they fit, in one statement.

        Returns what the bucket has spent in the window after the charge (``None`` when the cost
        did not fit: nothing was charged) and the window's end (UTC).
        """
        start, reset_at = self.window(now())
        if cost > self.points:  # can never fit: the insert below would store it anyway
            return None, reset_at
        if self.db.is_sqlite:
            # group-committed with the process's other writes (Database.write); the window as
            # SQLAlchemy stores it on SQLite, so its own reads of the table match
            window = sqlite_timestamp(start)
            results = await self.db.write([(_charge_sql(True), [bucket, window, cost, self.points])], _commit)
            rows = results[0] if results is not None else []
        else:
            # autocommit: the statement is its own transaction, committed at once
            # not retried on a broken connection: the server may have charged already
            statement = (_charge_sql(False), [bucket, start, cost, self.points])
            (rows,) = await self.db.fetch_raw([statement], retry=False)
        used = rows[0][0] if rows else None
        self._charges += 1
        if self._charges % PRUNE_EVERY == 0:
            async with self.db.serialized_write(), self.db.reads.connect() as connection:
                await connection.execute(sa.delete(budget_rows).where(budget_rows.c.window_start < start))
        return (int(used) if used is not None else None), reset_at

    async def peek(self, bucket: str) -> tuple[int, dt.datetime]:
        """What ``bucket`` has spent in the current window and the window's end, charging nothing (one read)."""
        start, reset_at = self.window(now())
        async with self.db.reads.connect() as connection:
            used = (
                await connection.execute(
                    sa.select(budget_rows.c.used).where(
                        budget_rows.c.bucket == bucket, budget_rows.c.window_start == start
                    )
                )
            ).scalar_one_or_none()
        return int(used or 0), reset_at


def _commit(_results: list[list[Any]]) -> list[tuple[str, list[Any]]]:
    return []  # a charge that does not fit changes nothing: committing it is harmless


@functools.cache
def _charge_sql(is_sqlite: bool) -> str:
    """The charge's upsert in the driver's dialect (run through ``Database.fetch_raw``: compiling
    the same SQLAlchemy statement on every request cost more than running it)."""
    sql, names = DriverDialect(is_sqlite).render(CHARGE_BUDGET)
    if names != ["bucket", "window", "cost", "points"]:  # the callers pass the values in this order
        raise ValueError(f"CHARGE_BUDGET's parameters changed: {names}")
    return sql
