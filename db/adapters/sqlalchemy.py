"""SQLAlchemy's private parts we build on: its aiosqlite adapter classes and its event dispatch.

The one-trip cursor. aiosqlite runs every call on its own thread and SQLAlchemy's adapter makes
four of them per statement: open a cursor, execute, fetch all rows, close the cursor. Each trip
hands the GIL to the other thread and back; on the benchmark's home page that handing, not
SQLite, was the largest single cost. ``OneTripCursor`` does the four steps in one function on
the SQLite thread and keeps the rows, so a statement costs one trip. Everything else (the
connection, transactions, error translation) is SQLAlchemy's aiosqlite adapter unchanged; the
engine takes ``conduit_aiosqlite()`` as its DBAPI (``create_async_engine(..., module=...)``).
SQLAlchemy has no public hook for a cursor, so this subclasses its adapter classes
(``AsyncAdapt_aiosqlite_*``), sets the private slots of their ``__init__`` and uses the
adapter connection's ``_execute_mutex``, ``_handle_exception`` and ``_cursor_cls``, and
``sqlalchemy.util``'s ``await_`` and ``EMPTY_DICT``.

``announce``: driver SQL that bypasses SQLAlchemy is still shown to ``before_cursor_execute``
listeners by calling the engine's private event dispatcher.

``tests/db/test_adapters.py`` checks all of it against the installed SQLAlchemy.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from db.adapters.aiosqlite import run_on_thread

__all__ = ["OneTripConnection", "OneTripCursor", "OneTripDBAPI", "announce", "conduit_aiosqlite"]

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


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose ``execute`` is one trip to the SQLite thread (module docstring)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # the base class's slots, set as its __init__ would, but no cursor is opened here:
        # _run opens and closes its own on the SQLite thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection.driver_connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        """The last statement's column description, ``None`` when it returned no rows."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (``-1`` for a ``SELECT``)."""
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        """The rowid of the last inserted row (``None`` before any statement)."""
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        """Always 1: every row is already fetched."""
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return  # nothing is open between statements

    def close(self) -> None:
        """Drop the rows not yet fetched."""
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        """Run ``operation`` and buffer its rows, in one trip to the SQLite thread."""
        return self._one_trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        """Run ``operation`` once per parameter set, in one trip to the SQLite thread."""
        return self._one_trip(operation, seq_of_parameters, many=True)

    def _one_trip(self, operation: Any, parameters: Any, many: bool) -> None:
        connection = cast(aiosqlite.Connection, self._connection)
        try:
            outcome: _Outcome = await_(self._locked(connection, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
            raise  # _handle_exception always raises; this keeps type checkers informed
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _locked(self, connection: aiosqlite.Connection, operation: Any, parameters: Any, many: bool) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            return await run_on_thread(connection, _run, operation, parameters, many)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter with ``OneTripCursor`` as its cursor."""

    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI adapter, handing out ``OneTripConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        """A ``OneTripConnection`` on the aiosqlite connection SQLAlchemy's adapter opens."""
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted.driver_connection)


def conduit_aiosqlite() -> OneTripDBAPI:
    """The DBAPI module to give ``create_async_engine`` for SQLite URLs (``module=``)."""
    return OneTripDBAPI(aiosqlite, sqlite3)


def announce(engine: AsyncEngine, statements: list[tuple[str, list[Any]]]) -> None:
    """Tell ``engine``'s ``before_cursor_execute`` listeners of driver SQL run outside SQLAlchemy.

    Listeners get ``None`` for the connection, the cursor and the execution context, the
    statement and its parameters, and ``executemany=False``. Costs nothing without listeners.
    """
    dispatch = engine.sync_engine.dispatch.before_cursor_execute
    if dispatch:
        for sql, parameters in statements:
            dispatch(None, None, sql, parameters, None, False)
