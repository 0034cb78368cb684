"""aiosqlite under SQLAlchemy with one trip to the SQLite thread per statement.

aiosqlite runs every call on its own thread and SQLAlchemy's adapter makes four of them per
statement: open a cursor, execute, fetch all rows, close the cursor. Each trip hands the GIL
to the other thread and back; on the benchmark's home page that handing, not SQLite, was the
largest single cost. ``OneTripCursor`` does the four steps in one function on the SQLite
thread and keeps the rows, so a statement costs one trip. Everything else (the connection,
transactions, error translation) is SQLAlchemy's aiosqlite adapter unchanged; the engine
takes this module as its DBAPI (``create_async_engine(..., module=conduit_aiosqlite())``).
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["InlineSQLite", "Offload", "OneTripCursor", "conduit_aiosqlite", "run_many", "run_transactions"]

# (description, rows, rowcount, lastrowid) of one statement
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the SQLite thread: execute, fetch everything, close; the whole statement in one trip."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def run_many(connection: sqlite3.Connection, statements: list[tuple[str, list[Any]]]) -> list[list[Any]]:
    """On the SQLite thread: every statement's rows, in order; a whole read plan in one trip."""
    out = []
    for operation, parameters in statements:
        cursor = connection.execute(operation, parameters)
        try:
            out.append(cursor.fetchall())
        finally:
            cursor.close()
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

    def read(self, statements: Statements) -> list[list[Any]]:
        """``run_many`` inline; ``Offload`` when it cannot finish within the budget."""
        self._deadline = time.perf_counter() + self.budget
        try:
            return run_many(self.connection, statements)
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


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose ``execute`` is one trip to the SQLite thread (module docstring)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # no cursor is opened here: _run opens and closes its own on the SQLite thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return  # nothing is open between statements

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._one_trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._one_trip(operation, seq_of_parameters, many=True)

    def _one_trip(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            outcome: _Outcome = await_(self._locked(connection, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
            raise  # _handle_exception always raises; this keeps type checkers informed
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _locked(self, connection: aiosqlite.Connection, operation: Any, parameters: Any, many: bool) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            return await connection._execute(_run, connection._conn, operation, parameters, many)  # type: ignore[no-untyped-call,no-any-return]


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter with ``OneTripCursor`` as its cursor."""

    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI adapter, handing out ``OneTripConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def conduit_aiosqlite() -> OneTripDBAPI:
    """The DBAPI module to give ``create_async_engine`` for SQLite URLs (``module=``)."""
    return OneTripDBAPI(aiosqlite, sqlite3)
