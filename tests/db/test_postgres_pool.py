"""Driver SQL's PostgreSQL connections (``db/postgres_pool.py``), on a real server: shared, bounded, never left busy."""

from __future__ import annotations

import asyncio

import pytest

from db.engine import Database, is_database_unavailable
from tests.postgres import Cluster
from tests.waiting import until

pytestmark = pytest.mark.slow

PID: tuple[str, list[object]] = ("SELECT pg_backend_pid()", [])


async def _pid(db: Database) -> int:
    (rows,) = await db.fetch_raw([PID])
    return int(rows[0][0])


async def _running(cluster: Cluster, query: str) -> bool:
    # the query text as pg_stat_activity shows it while it runs
    active = cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{query}'")
    return int(active) > 0


async def test_many_callers_share_the_pools_connections(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=2)
    try:
        # more callers than connections, each holding one a little while: some must wait and be handed one
        results = await asyncio.gather(
            *[db.fetch_raw([("SELECT pg_backend_pid(), pg_sleep(0.005), $1::int", [n])]) for n in range(40)]
        )
        assert [rows[0][2] for (rows,) in results] == list(range(40))
        assert len({rows[0][0] for (rows,) in results}) <= 2
        # a connection used before is used again, not a new one opened
        assert await _pid(db) in {rows[0][0] for (rows,) in results}
    finally:
        await db.dispose()


async def test_a_cancelled_statement_leaves_no_connection_busy(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=1)
    query = "SELECT pg_sleep(60)"
    try:
        before = await _pid(db)
        slow = asyncio.create_task(db.fetch_raw([(query, [])]))
        await until(lambda: _running(pg_cluster, query), "the slow statement to run")
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # the one connection was given back to asyncpg's pool, which cancelled the statement:
        # the next caller gets a connection that answers at once, not one still sleeping
        assert await asyncio.wait_for(db.fetch_raw([("SELECT 1", [])]), timeout=10) == [[(1,)]]
        assert not await _running(pg_cluster, query)
        assert isinstance(before, int)
    finally:
        await db.dispose()


async def test_a_caller_waits_no_longer_than_the_pool_timeout(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=1, pool_timeout=0.2)
    query = "SELECT pg_sleep(61)"
    try:
        holder = asyncio.create_task(db.fetch_raw([(query, [])]))
        await until(lambda: _running(pg_cluster, query), "the statement holding the connection to run")
        with pytest.raises(TimeoutError) as refused:
            await db.fetch_raw([("SELECT 1", [])])
        assert is_database_unavailable(refused.value)  # a 503, as asyncpg's own timeout was
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        # the caller that gave up left no waiter behind: the connection goes to the next caller
        assert await asyncio.wait_for(db.fetch_raw([("SELECT 2", [])]), timeout=10) == [[(2,)]]
    finally:
        await db.dispose()


async def test_a_connection_the_server_closed_is_replaced(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=2)
    try:
        first = await _pid(db)
        assert pg_cluster.sql(f"SELECT pg_terminate_backend({first})").strip() == "t"
        await until(
            lambda: pg_cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {first}").strip() == "0",
            "the backend to exit",
        )
        # the kept connection is dead: the read runs again on a fresh one (fetch_raw's one retry)
        second = await _pid(db)
        assert second != first
        assert await _pid(db) == second  # and that one is kept in turn
    finally:
        await db.dispose()


async def test_a_statement_error_keeps_the_connection(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=1)
    try:
        first = await _pid(db)
        with pytest.raises(Exception, match="division by zero"):
            await db.fetch_raw([("SELECT 1 / 0", [])])
        assert await _pid(db) == first
    finally:
        await db.dispose()
