"""Driver SQL's PostgreSQL connections (``db/postgres_pool.py``), on a real server: kept, shared in
order, bounded, given back when they cannot be trusted, and never left busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.engine import Database, is_database_unavailable
from db.postgres_pool import KeptConnections
from tests.postgres import Cluster
from tests.waiting import until

pytestmark = pytest.mark.slow


def _running(cluster: Cluster, query: str) -> bool:
    # the statement as pg_stat_activity shows it while it runs
    return (
        cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{query}'").strip()
        != "0"
    )


def _backends(cluster: Cluster, name: str) -> int:
    return int(cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'").strip())


async def _kept(cluster: Cluster, name: str, size: int, wait_seconds: float = 5.0) -> KeptConnections:
    pool = await asyncpg.create_pool(
        cluster.url(), min_size=0, max_size=size, server_settings={"application_name": name}
    )
    return KeptConnections(pool, wait_seconds)


@pytest.fixture
async def one(pg_cluster: Cluster) -> AsyncIterator[KeptConnections]:
    connections = await _kept(pg_cluster, "kept-one", 1, wait_seconds=0.3)
    try:
        yield connections
    finally:
        await asyncio.wait_for(connections.close(), timeout=10)


async def test_a_connection_is_kept_and_used_again(pg_cluster: Cluster) -> None:
    connections = await _kept(pg_cluster, "kept-again", 2)
    try:
        connection = await connections.acquire()
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        connections.release(connection)
        assert (connections.kept, connections.held) == (1, 1)
        again = await connections.acquire()
        assert again is connection and await again.fetchval("SELECT pg_backend_pid()") == pid
        with pytest.raises(asyncpg.DivisionByZeroError):
            await again.fetchval("SELECT 1 / 0")
        connections.release(again)  # a SQL error leaves it as it was
        assert (connections.kept, connections.held) == (1, 1)
    finally:
        await connections.close()
    assert _backends(pg_cluster, "kept-again") == 0  # close() gave back the kept one and closed it


async def test_callers_beyond_the_pool_wait_their_turn_on_few_connections(pg_cluster: Cluster) -> None:
    connections = await _kept(pg_cluster, "kept-shared", 2)
    served: list[int] = []

    async def caller(n: int) -> int:
        connection = await connections.acquire()
        try:
            served.append(n)
            return int(await connection.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.002)"))
        finally:
            connections.release(connection)

    try:
        pids = await asyncio.gather(*[caller(n) for n in range(40)])
        assert len(set(pids)) <= 2 and connections.held == 2
        # 0 and 1 each open a connection, which may take longer than another's statement; the
        # 38 callers that found both places taken are served in their order of arrival
        assert sorted(served) == list(range(40)) and [n for n in served if n >= 2] == list(range(2, 40))
        assert _backends(pg_cluster, "kept-shared") == 2
    finally:
        await connections.close()


async def test_a_caller_waits_no_longer_than_the_timeout_and_leaves_no_waiter(
    pg_cluster: Cluster, one: KeptConnections
) -> None:
    busy = await one.acquire()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await one.acquire()
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.0, waited
    one.release(busy)
    # the caller that gave up is not handed the connection: the next one gets it at once
    assert await asyncio.wait_for(one.acquire(), timeout=1) is busy
    one.release(busy)


async def test_a_caller_cancelled_as_it_is_handed_a_connection_hands_it_on(one: KeptConnections) -> None:
    busy = await one.acquire()
    first = asyncio.create_task(one.acquire())
    second = asyncio.create_task(one.acquire())
    await until(lambda: len(one._waiters) == 2, "two callers to wait")
    one.release(busy)  # to the first waiter...
    first.cancel()  # ... cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, timeout=1) is busy
    one.release(busy)
    assert (one.kept, one.held) == (1, 1)


async def test_a_connection_not_released_cleanly_goes_back_to_the_pool(
    pg_cluster: Cluster, one: KeptConnections
) -> None:
    query = "SELECT pg_sleep(60)"
    connection = await one.acquire()
    slow = asyncio.create_task(connection.fetch(query))
    await until(lambda: _running(pg_cluster, query), "the slow statement to run")
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    one.release(connection, reusable=False)
    assert (one.kept, one.held) == (0, 0)
    # the pool finished the cancellation: the next connection answers at once, nothing still sleeps
    fresh = await one.acquire()
    assert await asyncio.wait_for(fresh.fetchval("SELECT 1"), timeout=5) == 1
    one.release(fresh)
    assert not _running(pg_cluster, query)


async def test_a_kept_connection_the_server_closed_frees_its_place(pg_cluster: Cluster, one: KeptConnections) -> None:
    connection = await one.acquire()
    pid = await connection.fetchval("SELECT pg_backend_pid()")
    one.release(connection)
    assert pg_cluster.sql(f"SELECT pg_terminate_backend({pid})").strip() == "t"
    await until(lambda: connection._con is None or connection.is_closed(), "asyncpg to see the connection close")
    # its one place is free again: a fresh connection, well within the timeout
    fresh = await one.acquire()
    assert await fresh.fetchval("SELECT pg_backend_pid()") != pid
    one.release(fresh)
    assert (one.kept, one.held) == (1, 1)


async def test_expire_replaces_kept_connections_and_those_in_use_when_they_come_back(pg_cluster: Cluster) -> None:
    connections = await _kept(pg_cluster, "kept-expire", 2)
    try:
        kept, in_use = await connections.acquire(), await connections.acquire()
        old = {await c.fetchval("SELECT pg_backend_pid()") for c in (kept, in_use)}
        connections.release(kept)
        await connections.expire()
        connections.release(in_use)  # in use when the pool expired: not kept
        assert connections.kept == 0
        fresh = [await connections.acquire() for _ in range(2)]
        assert not {await c.fetchval("SELECT pg_backend_pid()") for c in fresh} & old
        for connection in fresh:
            connections.release(connection)
    finally:
        await connections.close()


async def test_close_refuses_waiting_callers_and_waits_for_connections_in_use(pg_cluster: Cluster) -> None:
    connections = await _kept(pg_cluster, "kept-close", 1)
    busy = await connections.acquire()
    waiting = asyncio.create_task(connections.acquire())
    await until(lambda: len(connections._waiters) == 1, "a caller to wait")
    closing = asyncio.create_task(connections.close())
    with pytest.raises(asyncpg.InterfaceError):
        await waiting
    assert not closing.done()
    connections.release(busy)  # given back to the closing pool, which then closes it
    await asyncio.wait_for(closing, timeout=10)
    assert _backends(pg_cluster, "kept-close") == 0


async def test_database_reads_survive_a_terminated_backend_with_one_connection(pg_cluster: Cluster) -> None:
    db = Database(pg_cluster.url(), pool_size=1)
    try:
        ((first,),) = (await db.fetch_raw([("SELECT pg_backend_pid()", [])]))[0]
        assert pg_cluster.sql(f"SELECT pg_terminate_backend({first})").strip() == "t"
        await until(
            lambda: pg_cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {first}").strip() == "0",
            "the backend to exit",
        )
        for _ in range(3):  # not just the read after it: the one place is not lost
            ((pid,),) = (await db.fetch_raw([("SELECT pg_backend_pid()", [])]))[0]
            assert pid != first
    finally:
        await db.dispose()


async def test_database_pool_timeout_is_a_database_unavailable_error(pg_cluster: Cluster) -> None:
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
        assert await asyncio.wait_for(db.fetch_raw([("SELECT 2", [])]), timeout=10) == [[(2,)]]
    finally:
        await db.dispose()
