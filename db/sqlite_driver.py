"""Driver SQL on SQLite: whole read plans and batches of write transactions in one call.

``run_many`` and ``run_transactions`` take a ``sqlite3.Connection`` and run on whichever thread
owns it: an aiosqlite connection's (``db.adapters.aiosqlite.run_on_thread``) or the event loop's,
for ``InlineSQLite``, within a time budget. SQLAlchemy's statements go through the one-trip
cursor of ``db.adapters.sqlalchemy`` instead.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Decide", "InlineSQLite", "Offload", "Statements", "run_many", "run_transactions"]


def run_many(
    connection: sqlite3.Connection, statements: list[tuple[str, list[Any]]], ended: list[int] | None = None
) -> list[list[Any]]:
    """On the SQLite thread: every statement's rows, in order; a whole read plan in one trip.

    ``ended``, when given, gets the time each statement finished (``time.time_ns()``), for its
    trace span (``db/tracing.py``).
    """
    out = []
    for operation, parameters in statements:
        cursor = connection.execute(operation, parameters)
        try:
            out.append(cursor.fetchall())
        finally:
            cursor.close()
        if ended is not None:
            ended.append(time.time_ns())
    return out


Statements = list[tuple[str, list[Any]]]
Decide = Callable[[list[list[Any]]], Statements | None]


def run_transactions(connection: sqlite3.Connection, units: list[tuple[Statements, Decide]]) -> list[Any]:
    """On the SQLite thread: each unit in its own ``BEGIN IMMEDIATE`` transaction, in order.

    A unit's ``decide`` sees its rows and returns the statements to add before ``COMMIT``, or
    ``None`` to roll back. Per unit: the rows (committed), ``None`` (rolled back) or the
    exception that rolled it back; one unit's failure leaves the others alone.
    """
    out: list[Any] = []
    for statements, decide in units:
        try:
            connection.execute("BEGIN IMMEDIATE")
            results = run_many(connection, statements)
            more = decide(results)
            if more is None:
                connection.execute("ROLLBACK")
                out.append(None)
                continue
            results.extend(run_many(connection, more))
            connection.execute("COMMIT")
            out.append(results)
        except Exception as error:
            _roll_back(connection)
            out.append(error)
    return out


def _roll_back(connection: sqlite3.Connection) -> None:
    """End an open transaction; a failing ROLLBACK must not fail the units beside it.

    If even the ROLLBACK fails, SQLite has already rolled the transaction back or will when
    the connection closes; nothing of it is committed either way.
    """
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


# SQLite result codes (primary, the low byte) that mean "not now" rather than "wrong"
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_INTERRUPT = 5, 6, 9


class Offload(Exception):
    """An inline statement ran out of its time or met a lock; run it on a connection's thread instead."""


class InlineSQLite:
    """A SQLite connection used directly on the event loop's thread, for short statements.

    A trip to an aiosqlite thread costs two thread switches and a GIL handover each way; the
    statements of planned operations usually take less than that (Q1's page about 120 µs, a
    budget charge 15 µs). Here they run inline, within a time budget: SQLite's progress
    handler interrupts a statement still running after ``budget_seconds`` (a tag that matches
    almost nothing makes Q3's page scan the whole index), and a lock held elsewhere is not
    waited for (``busy_timeout`` 0). Both raise ``Offload``, after which the caller runs the
    same work on a thread, where waiting does not stop the event loop; anything begun here
    is rolled back first. So the loop is never held by one call for much more than the budget.
    """

    def __init__(self, path: str, budget_seconds: float, on_connect: Callable[[sqlite3.Connection], None]) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        on_connect(self.connection)
        self.connection.execute("PRAGMA busy_timeout=0")
        self.budget = budget_seconds
        self._deadline = 0.0
        # called every 1,000 SQLite VM instructions (a few µs to some tens of µs)
        self.connection.set_progress_handler(self._over_budget, 1000)

    def _over_budget(self) -> int:
        return 1 if time.perf_counter() > self._deadline else 0

    def read(self, statements: Statements, ended: list[int] | None = None) -> list[list[Any]]:
        """``run_many`` inline (``ended`` as there); ``Offload`` when it cannot finish within the budget."""
        self._deadline = time.perf_counter() + self.budget
        try:
            return run_many(self.connection, statements, ended)
        except sqlite3.OperationalError as error:
            if _is_not_now(error):
                raise Offload(str(error)) from error
            raise

    def write(self, statements: Statements, decide: Decide) -> Any:
        """One ``run_transactions`` unit inline: its outcome; ``Offload`` (rolled back) when it cannot finish."""
        self._deadline = time.perf_counter() + self.budget
        (outcome,) = run_transactions(self.connection, [(statements, decide)])
        _roll_back(self.connection)  # never leave the loop's connection holding the write lock
        if isinstance(outcome, sqlite3.OperationalError) and _is_not_now(outcome):
            raise Offload(str(outcome)) from outcome
        return outcome

    def close(self) -> None:
        self.connection.close()


def _is_not_now(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_INTERRUPT)
