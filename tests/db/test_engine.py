"""``Database`` on an in-memory SQLite database: driver SQL shares the engine's one connection."""

from __future__ import annotations

import sqlalchemy as sa

from db.engine import Database


async def test_driver_sql_on_an_in_memory_database_sees_the_engines_tables() -> None:
    db = Database("sqlite://")
    try:
        async with db.engine.begin() as connection:
            await connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
        written = await db.write([("INSERT INTO t (name) VALUES (?) RETURNING id", ["a"])], lambda rows: [])
        assert written == [[(1,)]]
        assert await db.write([("INSERT INTO t (name) VALUES (?)", ["b"])], lambda rows: None) is None  # rolled back
        assert await db.fetch_raw([("SELECT name FROM t", []), ("SELECT count(*) FROM t", [])]) == [[("a",)], [(1,)]]
        async with db.engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT name FROM t"))).scalars().all() == ["a"]
    finally:
        await db.dispose()
