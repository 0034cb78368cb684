"""Publish/subscribe of domain events for GraphQL subscriptions.

The interface is deliberately narrow (publish one event; iterate the events of one channel).
Two implementations: ``InProcessBroker`` for one server process (SQLite), and
``PostgresBroker`` on PostgreSQL ``LISTEN/NOTIFY`` for several processes sharing one
database. Payloads carry ids only; subscribers load the rows themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("conduit.broker")

COMMENT_ADDED = "comment_added"
ARTICLE_PUBLISHED = "article_published"
SESSIONS_CLOSED = "sessions_closed"
"""A user was suspended or deleted: every process closes that user's WebSockets (``sessions_closed``)."""


@dataclass(frozen=True)
class Event:
    """One event on ``channel``; ``payload`` is JSON-serializable (ids, tag names)."""

    channel: str
    payload: dict[str, Any] = field(default_factory=dict)


def sessions_closed(user_id: int, reason: str) -> Event:
    """The event that makes every process close ``user_id``'s WebSockets, giving ``reason`` (the close reason)."""
    return Event(SESSIONS_CLOSED, {"user_id": user_id, "reason": reason})


class Broker(Protocol):
    """Delivers every published event to every current subscriber of its channel, in order.

    A ``transactional`` broker publishes inside the writing transaction (``connection`` is
    that transaction's connection) and delivers only if it commits; any other broker is
    called after the commit, with ``connection=None``.
    """

    transactional: bool

    async def publish(self, event: Event, connection: AsyncConnection | None = None) -> None:
        """Send ``event`` to the channel's subscribers."""
        ...

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of the channel's events."""
        ...

    async def close(self) -> None:
        """Stop delivering and release resources."""
        ...


async def _drain(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    """A subscriber's events, as they are queued for it."""
    while True:
        yield await queue.get()


class InProcessBroker:
    """A broker for one server process: an unbounded queue per subscriber."""

    transactional = False

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    async def publish(self, event: Event, connection: AsyncConnection | None = None) -> None:
        """Queue ``event`` for every subscriber of its channel; never blocks."""
        for queue in self._queues.get(event.channel, ()):
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Register at once, so events published after entering are all delivered."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[channel].add(queue)

        try:
            yield _drain(queue)
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                del self._queues[channel]

    def subscriber_count(self, channel: str) -> int:
        """How many subscribers ``channel`` has now."""
        return len(self._queues.get(channel, ()))

    async def close(self) -> None:
        """Nothing to release in process."""
        self._queues.clear()


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from a SQLAlchemy URL (``postgresql+asyncpg://...``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def notify_statement(event: Event) -> tuple[str, list[Any]]:
    """``pg_notify`` of ``event`` in asyncpg's SQL, to run inside the writing transaction.

    The payload is the JSON ``PostgresBroker.publish`` sends (and its listeners decode).
    """
    return "SELECT pg_notify($1, $2)", [event.channel, json.dumps(event.payload, separators=(",", ":"))]


class PostgresBroker:
    """A broker for several server processes on one PostgreSQL database (``LISTEN/NOTIFY``).

    ``publish`` runs ``pg_notify`` inside the writing transaction, so PostgreSQL delivers the
    event only if that transaction commits, and delivers events of different transactions in
    commit order, to every process (PostgreSQL docs, "NOTIFY"). Each process keeps one
    listening connection, opened at the first subscription; a channel is ``LISTEN``ed while
    it has subscribers. When the connection is lost (the database restarts), it reconnects
    with backoff (``reconnect_delay`` up to ``max_reconnect_delay`` seconds) and listens
    again; events committed while no connection listened are not replayed.
    """

    transactional = True

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 2.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 2.0,
        keepalive_interval: float = 10.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._connect_timeout = connect_timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._keepalive_interval = keepalive_interval
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def publish(self, event: Event, connection: AsyncConnection | None = None) -> None:
        """Notify ``event.channel`` with the JSON payload; in ``connection``'s transaction if given."""
        sql, (channel, payload) = notify_statement(event)
        if connection is not None:
            statement = sa.text("SELECT pg_notify(:channel, :payload)")
            await connection.execute(statement, {"channel": channel, "payload": payload})
            return
        listener = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        try:
            await listener.execute(sql, channel, payload)
        finally:
            await listener.close()

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Listen on ``channel``; every event committed after entering is delivered.

        Raises the driver's connection error when the database is unreachable.
        """
        queue: asyncio.Queue[Event] = asyncio.Queue()
        async with self._lock:
            connection = await self._listening_connection()
            if not self._queues.get(channel):
                await connection.add_listener(channel, self._on_notification)
            self._queues[channel].add(queue)

        try:
            yield _drain(queue)
        finally:
            await self._unsubscribe(channel, queue)

    async def _unsubscribe(self, channel: str, queue: asyncio.Queue[Event]) -> None:
        async with self._lock:
            queues = self._queues.get(channel)
            if queues is None:
                return
            queues.discard(queue)
            if queues:
                return
            del self._queues[channel]
            connection = self._connection
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
                    await connection.remove_listener(channel, self._on_notification)

    def subscriber_count(self, channel: str) -> int:
        """How many subscribers of this process ``channel`` has now."""
        return len(self._queues.get(channel, ()))

    async def _listening_connection(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        for channel in self._queues:
            await connection.add_listener(channel, self._on_notification)
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        if self._keepalive_interval > 0:
            self._spawn(self._keepalive(connection))
        return connection

    def _on_notification(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            event = Event(channel, json.loads(payload))
        except ValueError:
            logger.error("dropped a notification with a malformed payload on %s", channel)
            return
        for queue in self._queues.get(channel, ()):
            queue.put_nowait(event)

    def _on_terminated(self, connection: Any) -> None:
        if self._closed or connection is not self._connection:
            return
        self._connection = None
        logger.warning("lost the LISTEN connection to PostgreSQL; reconnecting")
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self._reconnect_delay
        while not self._closed:
            async with self._lock:
                if not self._queues or (self._connection is not None and not self._connection.is_closed()):
                    return  # nobody listens (the next subscribe connects), or already back
                try:
                    await self._listening_connection()
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    logger.info("PostgreSQL still unavailable for LISTEN (%s); retrying in %.1fs", error, delay)
                else:
                    logger.warning("LISTEN connection to PostgreSQL restored")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_reconnect_delay)

    async def _keepalive(self, connection: asyncpg.Connection) -> None:
        # A silently dropped network path is only noticed when something is sent.
        while not self._closed and not connection.is_closed():
            await asyncio.sleep(self._keepalive_interval)
            try:
                await asyncio.wait_for(connection.execute("SELECT 1"), timeout=self._connect_timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()  # runs _on_terminated, which reconnects
                return

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=2)
            self._connection = None
        self._queues.clear()
