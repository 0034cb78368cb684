"""The private internals of aiosqlite and SQLAlchemy that ``db/adapters/`` relies on, checked on the installed versions.

Each test fails naming the library, its version and the adapter to update when an upgrade
changes what the adapter assumes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_cursor
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.adapters import aiosqlite as aiosqlite_adapter
from db.adapters.aiosqlite import run_on_thread
from db.adapters.sqlalchemy import OneTripCursor, announce, conduit_aiosqlite
from tests.internals import relied_on

AIOSQLITE = ("aiosqlite", "Connection._execute and Connection._conn", "db/adapters/aiosqlite.py")
ADAPTER = "db/adapters/sqlalchemy.py"

# What OneTripCursor overrides or inherits of SQLAlchemy's aiosqlite cursor, as of SQLAlchemy 2.1.9.
# A method added or removed upstream may touch the cursor OneTripCursor never opens.
CURSOR_MEMBERS = {
    "__enter__", "__exit__", "__iter__", "_adapt_connection", "_aenter_cursor", "_async_soft_close",
    "_awaitable_cursor_close", "_connection", "_cursor", "_execute_async", "_executemany_async", "_make_new_cursor",
    "_rows", "_soft_closed_memoized", "arraysize", "close", "description", "execute", "executemany", "fetchall",
    "fetchmany", "fetchone", "lastrowid", "nextset", "rowcount", "server_side", "setinputsizes",
}  # fmt: skip


@pytest.fixture
async def connection(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with aiosqlite.connect(tmp_path / "adapters.db", isolation_level=None) as connection:
        yield connection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}", module=conduit_aiosqlite())
    try:
        yield engine
    finally:
        await engine.dispose()


def _thread_and_connection(connection: sqlite3.Connection, tag: str) -> tuple[int, bool, str]:
    return threading.get_ident(), isinstance(connection, sqlite3.Connection), tag


async def test_run_on_thread_runs_on_the_connections_own_thread(connection: aiosqlite.Connection) -> None:
    with relied_on(*AIOSQLITE):
        first = await run_on_thread(connection, _thread_and_connection, "a")
        second = await run_on_thread(connection, _thread_and_connection, tag="b")
        assert first[1] and second[1], "the function did not get the sqlite3.Connection"
        assert first[0] == second[0] != threading.get_ident(), "not run on the connection's one thread"
        assert (first[2], second[2]) == ("a", "b")


async def test_run_on_thread_keeps_order_and_raises_the_functions_error(connection: aiosqlite.Connection) -> None:
    def append(_connection: sqlite3.Connection, seen: list[int], value: int) -> int:
        seen.append(value)
        return value

    def fail(connection: sqlite3.Connection) -> None:
        connection.execute("SELECT * FROM missing")

    with relied_on(*AIOSQLITE):
        seen: list[int] = []
        assert await asyncio.gather(*(run_on_thread(connection, append, seen, i) for i in range(20))) == list(range(20))
        assert seen == list(range(20)), "calls did not run in the order they were queued"
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await run_on_thread(connection, fail)


async def test_run_on_thread_refuses_a_closed_connection(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "closed.db")
    await connection.close()
    with relied_on(*AIOSQLITE), pytest.raises(ValueError):
        await aiosqlite_adapter.run_on_thread(connection, _thread_and_connection, "late")


def _cursor_slots(cursor: Any) -> set[str]:
    slots = {name for cls in type(cursor).__mro__ for name in getattr(cls, "__slots__", ())}
    return {name for name in slots if hasattr(cursor, name)}


async def test_one_trip_cursor_sets_what_sqlalchemys_cursor_sets(engine: AsyncEngine) -> None:
    def both(sync_connection: Any) -> tuple[set[str], set[str], Any]:
        adapted = sync_connection.connection.dbapi_connection
        ours = adapted.cursor()
        theirs = AsyncAdapt_aiosqlite_cursor(adapted)
        theirs.close()
        return _cursor_slots(ours), _cursor_slots(theirs), ours

    with relied_on("sqlalchemy", "AsyncAdapt_aiosqlite_cursor.__init__ and _cursor_cls", ADAPTER):
        async with engine.connect() as connection:
            ours, theirs, cursor = await connection.run_sync(both)
        assert isinstance(cursor, OneTripCursor), "the connection adapter no longer makes its cursor from _cursor_cls"
        assert not theirs - ours, f"SQLAlchemy's cursor now sets {sorted(theirs - ours)}; OneTripCursor does not"


def test_sqlalchemys_cursor_has_the_members_one_trip_cursor_was_written_for() -> None:
    with relied_on("sqlalchemy", "AsyncAdapt_aiosqlite_cursor's members", ADAPTER):
        members = {name for name in dir(AsyncAdapt_aiosqlite_cursor) if name not in dir(object)}
        members -= {"__annotations__", "__module__", "__slots__"}
        assert members == CURSOR_MEMBERS, (
            f"added {sorted(members - CURSOR_MEMBERS)}, removed {sorted(CURSOR_MEMBERS - members)}"
        )


async def test_a_statement_is_one_trip_and_errors_are_translated(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = 0
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, *args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await execute(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def one_trip(connection: AsyncConnection, statement: Any, parameters: Any = None) -> Any:
        nonlocal trips
        trips = 0
        result = await connection.execute(statement, parameters)
        assert trips == 1, f"{trips} trips to aiosqlite's thread for one statement"
        return result

    with relied_on("sqlalchemy", "the aiosqlite adapter's connection (_execute_mutex, _handle_exception)", ADAPTER):
        async with engine.connect() as connection:
            monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
            await one_trip(connection, sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await one_trip(connection, sa.text("INSERT INTO t (name) VALUES (:n)"), [{"n": "a"}, {"n": "b"}])
            assert inserted.rowcount == 2
            single = await one_trip(connection, sa.text("INSERT INTO t (name) VALUES ('c')"))
            assert single.lastrowid == 3
            rows = await one_trip(connection, sa.text("SELECT id, name FROM t ORDER BY id"))
            assert list(rows.keys()) == ["id", "name"] and rows.all() == [(1, "a"), (2, "b"), (3, "c")]
            with pytest.raises(sa.exc.IntegrityError) as raised:
                await connection.execute(sa.text("INSERT INTO t (name) VALUES ('a')"))
            assert isinstance(raised.value.orig, sqlite3.IntegrityError)
            await connection.rollback()


async def test_announce_reaches_before_cursor_execute_listeners(engine: AsyncEngine) -> None:
    seen: list[tuple[Any, ...]] = []

    def listener(*args: Any) -> None:
        seen.append(args)

    with relied_on("sqlalchemy", "Engine.dispatch.before_cursor_execute", ADAPTER):
        assert not engine.sync_engine.dispatch.before_cursor_execute, "an engine without listeners dispatches"
        announce(engine, [("SELECT 1", [])])
        event.listen(engine.sync_engine, "before_cursor_execute", listener)
        announce(engine, [("SELECT ?", [1]), ("SELECT 2", [])])
        event.remove(engine.sync_engine, "before_cursor_execute", listener)
        assert seen == [(None, None, "SELECT ?", [1], None, False), (None, None, "SELECT 2", [], None, False)]
