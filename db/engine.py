"""Engine, sessions and transactions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite is opened in WAL mode with foreign keys on and a busy timeout. Reads run in the
driver's autocommit mode (each statement its own snapshot), and a write transaction starts
with ``BEGIN IMMEDIATE`` under a process-wide lock: SQLite has one writer at a time, and a
deferred transaction that upgrades to a write fails at once with ``database is locked``
instead of waiting, so writers queue here instead.

Two ways to the database: SQLAlchemy (the ORM session of mutations, Core statements of
loaders), and driver SQL for the hot paths (``fetch_raw``, ``write``: planned operations, the
cost budget, the viewer lookup), which skips statement compilation and SQLAlchemy's pool. On
SQLite driver SQL runs inline on the event loop within a time budget, else on a small queue of
aiosqlite connections, and writes are group-committed; on PostgreSQL it uses an asyncpg pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import aiosqlite
import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import StaticPool

from db.adapters.aiosqlite import run_on_thread
from db.adapters.sqlalchemy import announce, conduit_aiosqlite
from db.postgres_pool import KeptConnections
from db.sqlite_driver import Decide, InlineSQLite, Offload, Statements, run_many, run_transactions

if TYPE_CHECKING:
    from db.tracing import SQLSpans


def normalize_url(url: str) -> str:
    """Map plain database URLs onto the async drivers.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``; ``postgres://`` and
    ``postgresql://`` become ``postgresql+asyncpg://``. Other URLs are returned unchanged.
    """
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def is_sqlite_url(url: str) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


INLINE_BUDGET_SECONDS = 0.002
"""How long one inline SQLite call may hold the event loop before it moves to a thread (InlineSQLite)."""

SQLITE_POOL = (2, 0)
"""SQLite's default pool: two connections for SQLAlchemy, so two aiosqlite threads. Every
connection is a thread competing for the GIL, and SQLite's work per statement is short: on the
home page (Q1, 16 clients, one core) 2 connections served 1,114 requests/s, 3 960 and 15 about
670. Not one, because a write transaction reads its payload on a second connection while
holding the first. Driver SQL has up to ``pool_size`` more, opened on demand, plus the event
loop's inline connection: 5 in all by default, most of them idle."""
POSTGRES_POOL = (5, 5)
"""PostgreSQL's default pool: 5 connections plus 5 under load, per process, for SQLAlchemy;
driver SQL's asyncpg pool holds up to ``pool_size`` more (15 per process in all by default)."""


@dataclass
class Database:
    """One engine and the rules for using it: per-request sessions and write transactions.

    The pool holds ``pool_size`` connections plus up to ``max_overflow`` more (``None``: the
    engine's default, ``SQLITE_POOL`` or ``POSTGRES_POOL``). On PostgreSQL (asyncpg) a request
    waits ``pool_timeout`` seconds for one, connecting gives up after ``connect_timeout``
    seconds, and the server cancels any statement running longer than
    ``statement_timeout_ms`` milliseconds. ``busy_timeout_ms`` is SQLite's wait for a
    lock held by another process, in milliseconds.
    """

    url: str
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float = 5.0
    connect_timeout: float = 2.0
    statement_timeout_ms: int = 10_000
    busy_timeout_ms: int = 5000
    # how long one inline SQLite call may hold the event loop (InlineSQLite); with 0, whatever
    # runs long enough to be checked (1,000 SQLite VM steps) moves to a thread
    inline_budget_seconds: float = INLINE_BUDGET_SECONDS
    echo: bool = False
    engine: AsyncEngine = field(init=False)
    # the engine for single read statements (see __post_init__)
    reads: AsyncEngine = field(init=False)
    is_sqlite: bool = field(init=False)
    _write_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    # SQLite group commit (``write``): transactions waiting for the next trip, and its task
    _queued_writes: list[tuple[Statements, Decide, asyncio.Future[Any]]] = field(init=False, default_factory=list)
    _writer: asyncio.Task[None] | None = field(init=False, default=None)
    # SQLite: the file of the connections that run driver SQL (None for an in-memory database)
    _sqlite_path: str | None = field(init=False, default=None)
    _sqlite_idle: asyncio.Queue[aiosqlite.Connection] = field(init=False, default_factory=asyncio.Queue)
    _sqlite_opened: int = field(init=False, default=0)
    _inline: InlineSQLite | None = field(init=False, default=None)
    _disposed: bool = field(init=False, default=False)
    # inline SQLite calls that moved to a thread (too long, or a lock held elsewhere)
    offloads: int = field(init=False, default=0)
    # spans for every statement, when tracing is on (``db.tracing.trace_statements``)
    sql_spans: SQLSpans | None = field(init=False, default=None)
    # PostgreSQL: the asyncpg pool of driver SQL (``_postgres_pool``)
    _pg_pool: KeptConnections | None = field(init=False, default=None)
    _pg_pool_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.url = normalize_url(self.url)
        self.is_sqlite = is_sqlite_url(self.url)
        pool_size, max_overflow = SQLITE_POOL if self.is_sqlite else POSTGRES_POOL
        self.pool_size = pool_size if self.pool_size is None else self.pool_size
        self.max_overflow = max_overflow if self.max_overflow is None else self.max_overflow
        kwargs: dict[str, Any] = {"echo": self.echo}
        if self.is_sqlite:
            kwargs["module"] = conduit_aiosqlite()  # one trip to aiosqlite's thread per statement
            database = make_url(self.url).database
            if database in (None, "", ":memory:"):
                # One shared connection, or every connection would see its own empty database.
                kwargs["poolclass"] = StaticPool
            else:
                # Connections are in autocommit at the driver and every write transaction ends
                # with an explicit COMMIT or ROLLBACK, so the pool's reset (a ROLLBACK, one more
                # trip to aiosqlite's thread per statement) has nothing to undo.
                kwargs.update(pool_size=self.pool_size, max_overflow=self.max_overflow, pool_reset_on_return=None)
                self._sqlite_path = database
        else:
            kwargs.update(
                pool_size=self.pool_size,
                max_overflow=self.max_overflow,
                pool_timeout=self.pool_timeout,
                # A connection the server dropped (restart, failover) is replaced on checkout.
                pool_pre_ping=True,
                connect_args={"timeout": self.connect_timeout, "server_settings": self._server_settings()},
            )
        self.engine = create_async_engine(self.url, **kwargs)
        # Reads run one statement per connection; on PostgreSQL autocommit saves the BEGIN and
        # ROLLBACK round trips around each (every statement still sees a consistent snapshot).
        self.reads = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        sync_engine = self.engine.sync_engine
        if self.is_sqlite:
            event.listen(sync_engine, "connect", self._sqlite_on_connect)

    def _sqlite_on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: reads take a fresh snapshot per statement, and
        # write transactions are begun explicitly with BEGIN IMMEDIATE (see transaction()).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def session(self) -> AsyncSession:
        """A new session; the caller closes it (one per request)."""
        return AsyncSession(self.engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def transaction(
        self,
        session: AsyncSession,
        on_commit: Callable[[], Awaitable[None]] | None = None,
        before_commit: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> AsyncIterator[AsyncSession]:
        """Run one write transaction on ``session``: commit on success, roll back on any error.

        On SQLite, transactions of this process are serialized and begin with
        ``BEGIN IMMEDIATE``, so concurrent writers wait for the lock instead of failing.
        ``before_commit`` runs last inside the transaction, on its connection (PostgreSQL's
        ``NOTIFY`` goes there). ``on_commit`` runs after the commit and, on SQLite, before the
        next writer may start, so what it publishes follows commit order.
        """
        if session.in_transaction():
            # Only reads ran before; on SQLite they hold no transaction, elsewhere this ends it.
            await session.commit()
        if not self.is_sqlite:
            async with session.begin():
                yield session
                if before_commit is not None:
                    await session.flush()
                    await before_commit(await session.connection())
            if on_commit is not None:
                await on_commit()
            return
        async with self._write_lock:
            async with session.begin():
                connection = await session.connection()
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield session
                if before_commit is not None:
                    await session.flush()
                    await before_commit(connection)
            if on_commit is not None:
                await on_commit()

    @asynccontextmanager
    async def serialized_write(self) -> AsyncIterator[None]:
        """On SQLite, hold this process's write lock (see ``transaction``); elsewhere do nothing.

        For a single write statement outside ``transaction`` (an autocommit upsert): without the
        lock, concurrent writers of this process meet in SQLite's busy handler, which sleeps
        (1 ms, 2 ms, 5 ms, ... 100 ms) instead of queueing.
        """
        if not self.is_sqlite:
            yield
            return
        async with self._write_lock:
            yield

    async def fetch_raw(self, statements: Statements, *, retry: bool = True) -> list[list[Any]]:
        """The rows of each ``(sql, parameters)``, run in order, in autocommit, on one pooled connection.

        For hot paths (planned queries in ``graph/execution/planned/``, the viewer lookup, the cost
        budget's charge on PostgreSQL): ``sql`` is already in the driver's dialect (``?``
        placeholders on SQLite, ``$n`` on PostgreSQL), so SQLAlchemy's statement compilation
        and result processing are skipped; on SQLite the statements run inline or in one trip
        to a connection's thread. Each statement is announced to ``before_cursor_execute``
        listeners (BenchStats, tests' SQL capture). Rows are the driver's (tuples,
        ``asyncpg.Record``), values undecoded (SQLite timestamps are text). Raises the
        driver's own errors. On PostgreSQL a statement that met a connection the server had
        closed is run once more on a fresh one; pass ``retry=False`` for a write, which the
        server may have run before the connection broke.
        """
        announce(self.engine, statements)  # to BenchStats, tests' SQL capture
        spans = self.sql_spans
        if spans is not None and not spans.wanted():
            spans = None
        if not self.is_sqlite:
            # one retry: after a restart every pooled connection is dead
            for attempt in (1, 2):
                try:
                    # _postgres_connection() inline: its context manager cost about 5 µs per statement
                    connections = await self._postgres_pool()
                    connection = await connections.acquire()
                    reusable = False
                    try:
                        if spans is None:
                            rows = [await connection.fetch(sql, *parameters) for sql, parameters in statements]
                        else:
                            rows = [await spans.fetch(connection, sql, parameters) for sql, parameters in statements]
                        reusable = True
                        return rows
                    except asyncpg.PostgresError as error:
                        # the server refused a statement: the connection is as it was, unless it is going away
                        reusable = not isinstance(error, _UNAVAILABLE_DRIVER_ERRORS)
                        raise
                    finally:
                        connections.release(connection, reusable=reusable)
                except _STALE_CONNECTION_ERRORS:
                    if attempt == 2 or not retry:
                        raise
                    await (await self._postgres_pool()).expire()
        if spans is None:
            return await self._read_sqlite(statements, None)
        # SQLite runs the statements in one call: each one's end is noted there, spans made after
        started, ended = time.time_ns(), list[int]()
        try:
            rows = await self._read_sqlite(statements, ended)
        except BaseException as error:
            spans.timed(statements, started, ended, error)
            raise
        spans.timed(statements, started, ended)
        return rows

    async def _read_sqlite(self, statements: Statements, ended: list[int] | None) -> list[list[Any]]:
        """``fetch_raw`` on SQLite: inline, else on a connection's thread (``ended`` as for ``run_many``)."""
        if self._sqlite_path is not None:
            try:
                return self._inline_sqlite().read(statements, ended)
            except Offload:  # too long, or a lock: on a thread, where waiting does not hold up the loop
                self.offloads += 1
                if ended is not None:  # the first statement's span takes in the abandoned attempt
                    ended.clear()
            connection = await self._sqlite_checkout()
            try:
                return await run_on_thread(connection, run_many, statements, ended)
            finally:
                self._sqlite_checkin(connection)
        async with self._shared_sqlite() as driver:  # an in-memory SQLite database
            return await run_on_thread(driver, run_many, statements, ended)

    async def write(self, statements: Statements, decide: Decide) -> list[list[Any]] | None:
        """Run ``statements`` as one short write transaction; their rows, or ``None`` if rolled back.

        ``decide`` sees the rows and returns more statements to run before the commit (e.g.
        PostgreSQL's ``pg_notify``), or ``None`` to roll back. SQL is the driver's, as for
        ``fetch_raw``. Raises the driver's error (after rolling back).

        On SQLite this is a group commit: the transactions that arrive while one trip to the
        database is under way go together in the next trip, each still its own ``BEGIN
        IMMEDIATE`` ... ``COMMIT``, under this process's write lock (so they never meet
        ``transaction()``'s writers in SQLite's busy handler). A process holding its write lock
        for a whole trip through a busy event loop capped the server at one trip per write; this
        spends one trip on all the writes waiting. Callers resume in commit order.
        """
        announce(self.engine, statements)  # to BenchStats, tests' SQL capture
        spans = self.sql_spans
        if spans is None or not spans.wanted():
            return await self._write(statements, decide)
        ran = list(statements)  # and those decide adds, for the span
        with spans.batch(ran):
            return await self._write(statements, spans.noting(decide, ran))

    async def _write(self, statements: Statements, decide: Decide) -> list[list[Any]] | None:
        if not self.is_sqlite:
            return await self._write_postgres(statements, decide)
        if self._sqlite_path is not None and not self._write_lock.locked() and self._writer is None:
            # no writer of this process between its statements: the whole transaction inline
            try:
                outcome = self._inline_sqlite().write(statements, decide)
            except Offload:  # rolled back: queued for a thread below
                self.offloads += 1
            else:
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome  # type: ignore[no-any-return]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued_writes.append((statements, decide, future))
        if self._writer is None:
            # a task of its own: no request waits for others' writes, and a cancelled request
            # cannot strand the writes queued behind its own
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    async def _write_queued(self) -> None:
        try:
            while self._queued_writes:
                batch, self._queued_writes = self._queued_writes, []
                units = [(statements, decide) for statements, decide, _future in batch]
                try:
                    async with self._write_lock:
                        outcomes = await self._run_transactions(units)
                except Exception as error:  # the trip itself failed: every write of it fails alike
                    outcomes = [error] * len(batch)
                for (_statements, _decide, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._writer = None

    async def _run_transactions(self, units: list[tuple[Statements, Decide]]) -> list[Any]:
        if self._sqlite_path is not None:
            connection = await self._sqlite_checkout()
            try:
                return await run_on_thread(connection, run_transactions, units)
            finally:
                self._sqlite_checkin(connection)
        async with self._shared_sqlite() as driver:  # an in-memory database
            return await run_on_thread(driver, run_transactions, units)

    @asynccontextmanager
    async def _shared_sqlite(self) -> AsyncIterator[aiosqlite.Connection]:
        """The aiosqlite connection under an in-memory database's one shared (``StaticPool``) connection."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            yield cast(aiosqlite.Connection, raw.driver_connection)

    def _inline_sqlite(self) -> InlineSQLite:
        """The connection for inline statements (``InlineSQLite``), opened on first use."""
        if self._inline is None:
            if self._sqlite_path is None:  # callers check first: an in-memory database has no file to open
                raise RuntimeError("inline SQLite needs a database file")
            path, budget = self._sqlite_path, self.inline_budget_seconds
            self._inline = InlineSQLite(path, budget, lambda connection: self._sqlite_on_connect(connection, None))
        return self._inline

    def _sqlite_checkin(self, connection: aiosqlite.Connection) -> None:
        """Give ``connection`` back, or close it when the database was disposed of meanwhile.

        An aiosqlite thread is not a daemon: one left open keeps the process from exiting.
        """
        if self._disposed:
            self._sqlite_opened -= 1
            asyncio.get_running_loop().create_task(connection.close())
        else:
            self._sqlite_idle.put_nowait(connection)

    async def _sqlite_checkout(self) -> aiosqlite.Connection:
        """A connection of the driver-SQL pool (``fetch_raw``, ``write``), opening one while fewer than ``pool_size``.

        Not SQLAlchemy's pool: its checkout and return cost about 45 µs of the 66 µs a
        one-statement trip took (``SELECT 1``), against 22 µs with this queue.
        """
        if self._sqlite_idle.empty() and self._sqlite_opened < (self.pool_size or 1):
            if self._sqlite_path is None:  # callers check first: an in-memory database has no file to open
                raise RuntimeError("the driver-SQL pool needs a database file")
            self._sqlite_opened += 1
            try:
                connection = await aiosqlite.connect(self._sqlite_path, isolation_level=None)
                await run_on_thread(connection, self._sqlite_on_connect, None)
            except BaseException:
                self._sqlite_opened -= 1
                raise
            return connection
        return await self._sqlite_idle.get()

    async def _write_postgres(self, statements: Statements, decide: Decide) -> list[list[Any]] | None:
        async with self._postgres_connection() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                results = [await connection.fetch(sql, *parameters) for sql, parameters in statements]
                more = decide(results)
                if more is None:
                    await transaction.rollback()
                    return None
                results.extend([await connection.fetch(sql, *parameters) for sql, parameters in more])
            except BaseException:
                if not connection.is_closed():
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except Exception as error:  # the COMMIT may or may not have reached the server
                raise CommitOutcomeUnknown(str(error)) from error
            return results

    async def _postgres_pool(self) -> KeptConnections:
        """The asyncpg pool of driver SQL (``fetch_raw``, ``write``), made on first use; its connections kept.

        Not SQLAlchemy's pool: its checkout pinged the server first (``pool_pre_ping``), one
        round trip more per use; here a dead connection shows on use, and ``fetch_raw``
        retries a read once after expiring the pool. Up to ``pool_size`` connections, the same
        timeouts and server settings as the engine's, and no reset query on release (the
        connections only ever run whole statements and whole transactions). ``KeptConnections``
        spares most uses the pool's own checkout and return (``db/postgres_pool.py``).
        """
        if self._pg_pool is None:
            async with self._pg_pool_lock:
                if self._pg_pool is None:
                    dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
                    pool = await asyncpg.create_pool(
                        dsn,
                        min_size=0,
                        max_size=self.pool_size or 1,
                        timeout=self.connect_timeout,
                        server_settings=self._server_settings(),
                        reset=_keep_session,
                    )
                    self._pg_pool = KeptConnections(pool, self.pool_timeout)
        return self._pg_pool

    @asynccontextmanager
    async def _postgres_connection(self) -> AsyncIterator[asyncpg.Connection]:
        connections = await self._postgres_pool()
        connection = await connections.acquire()
        reusable = False
        try:
            yield connection
            reusable = True
        finally:
            connections.release(connection, reusable=reusable)

    def _server_settings(self) -> dict[str, str]:
        return {"application_name": "conduit", "statement_timeout": str(self.statement_timeout_ms)}

    async def ping(self) -> None:
        """Run a trivial query; raises the driver's error when the database is unreachable."""
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection, after the queued writes; a connection in use closes when given back."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        self._disposed = True
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        while not self._sqlite_idle.empty():
            await self._sqlite_idle.get_nowait().close()
            self._sqlite_opened -= 1
        if self._pg_pool is not None:
            pool, self._pg_pool = self._pg_pool, None
            await pool.close()
        await self.engine.dispose()


class CommitOutcomeUnknown(Exception):
    """The connection failed during ``COMMIT``: the transaction may or may not have committed."""


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """asyncpg's pool reset, made a no-op (``Database._postgres_pool``)."""


# A pooled connection the server closed (a restart): worth one retry of a read on a fresh one.
_STALE_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    ConnectionResetError,
    BrokenPipeError,
)

# Errors that mean "cannot reach the database", as opposed to a bad statement or a conflict.
_UNAVAILABLE_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect timeout (asyncio.TimeoutError is TimeoutError since 3.11)
    asyncpg.exceptions.PostgresConnectionError,  # includes "the database system is shutting down"
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,  # "connection is closed"
)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) means the database cannot be reached.

    True for refused or dropped connections, connect and pool-checkout timeouts, and a server
    shutting down; false for SQL errors such as constraint violations or a cancelled statement.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(current, _UNAVAILABLE_DRIVER_ERRORS):
            return True
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return False
