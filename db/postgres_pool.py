"""Driver SQL's PostgreSQL connections: asyncpg's pool, with the connections it lent kept and handed on.

asyncpg's ``Pool.acquire`` and ``release`` cost 12 to 16 µs of CPU per pair when a connection
is free (a task and a ``wait_for`` for the timeout, a proxy object, a shielded release), more
when callers queue for one, measured on the event loop of ``conduit serve``: about as much
as a planned page's statement costs the process itself. ``KeptConnections`` takes a
connection from the pool only while it holds fewer than the pool's ``max_size``; after a
statement that ended normally it keeps the connection instead of releasing it, and hands it
straight to the longest waiting caller, if any, else to the next ``acquire``: a list or a
future's operation. Callers wait in order of arrival. The pool still opens and closes every
connection; a connection goes back to it when its statement did not end normally
(cancelled, timed out, broken: the pool waits for a cancellation and closes what must be
closed), when the server closed it, and on ``expire``/``close``. Kept connections are never
idle in the pool, so its ``max_inactive_connection_lifetime`` does not retire them: a process
keeps up to ``max_size`` backends open, as it would under steady load anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import asyncpg

__all__ = ["KeptConnections"]

logger = logging.getLogger(__name__)

_SLOT = object()
"""What a waiting caller is handed instead of a connection: the place of one given back to the
pool, counted in ``_held`` already; the caller takes a connection from the pool in it."""


def _usable(connection: Any) -> bool:
    """Whether ``connection`` (a pool proxy) is still open; asyncpg detaches the proxy of a
    connection it saw close and takes the connection back itself."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # "released back to the pool"
        return False


class KeptConnections:
    """``pool``'s connections, kept checked out between uses (module docstring).

    ``timeout``: seconds ``acquire`` waits in all for a connection (``TimeoutError`` after
    it, as asyncpg's pool raises).
    """

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.max_size: int = pool.get_max_size()
        self._kept: list[Any] = []  # most recently used last: its buffers and cache are warm
        self._held = 0  # connections taken from the pool and not given back (kept, in use), or places
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._lent: set[int] = set()  # ids of the connections in use
        self._stale: set[int] = set()  # ... of those that were in use when the pool expired
        self._closing = False
        self._releases: set[asyncio.Task[None]] = set()  # releases to the pool under way

    @property
    def kept(self) -> int:
        """How many connections are at hand, checked out of the pool and unused."""
        return len(self._kept)

    @property
    def held(self) -> int:
        """How many connections this holds (kept or in use), at most the pool's ``max_size``."""
        return self._held

    async def acquire(self) -> Any:
        """A connection (asyncpg's pool proxy): one at hand, else a new one of the pool's, else
        the next one given back, in order of arrival; ``TimeoutError`` after ``timeout`` seconds."""
        kept = self._kept
        while kept:
            connection = kept.pop()
            if _usable(connection):
                self._lent.add(id(connection))
                return connection
            self._give_back(connection)  # the server closed it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        if self._held >= self.max_size and not self._closing:
            async with asyncio.timeout_at(deadline):
                handed = await self._wait()
            if handed is not _SLOT:
                return handed  # already counted in _held and _lent
        else:
            self._held += 1
        # this caller holds a place: a connection of the pool's goes in it
        try:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            connection = await self.pool.acquire(timeout=remaining)
        except BaseException:
            self._free_place()
            raise
        self._lent.add(id(connection))
        return connection

    async def _wait(self) -> Any:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            # a timeout or a cancellation may come just after a connection or a place was handed over
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is _SLOT:
                    self._free_place()
                else:
                    self.release(handed)
            elif waiter in self._waiters:  # else ``_hand_on`` already passed it by
                self._waiters.remove(waiter)
            raise

    def _hand_on(self, handed: Any) -> bool:
        """Give ``handed`` (a connection, or ``_SLOT``) to the longest waiting caller; whether one took it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    def _free_place(self) -> None:
        """One connection fewer is held: its place goes to the longest waiting caller, if any."""
        if not self._hand_on(_SLOT):
            self._held -= 1

    def release(self, connection: Any, *, reusable: bool = True) -> None:
        """Take ``connection`` back: to a waiting caller or kept when ``reusable``, else to the pool.

        ``reusable``: its statements ended normally (a result or a SQL error), so it is idle and
        outside any transaction. Never waits: a connection given back to the pool is released
        in a task of its own (asyncpg's release may wait for a cancellation to finish).
        """
        key = id(connection)
        if key in self._stale:  # lent before the pool expired: the pool closes it
            self._stale.discard(key)
            reusable = False
        if reusable and not self._closing and _usable(connection) and not connection.is_in_transaction():
            if self._hand_on(connection):
                return  # still lent, to its new user
            self._lent.discard(key)
            self._kept.append(connection)
            return
        self._lent.discard(key)
        self._give_back(connection)

    def _give_back(self, connection: Any) -> None:
        self._free_place()
        # in a task of its own: the caller may be cancelled, and the release must finish all the same
        task = asyncio.get_running_loop().create_task(self.pool.release(connection))
        self._releases.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releases.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # asyncpg has already terminated a connection it could not release cleanly
            logger.warning("a PostgreSQL connection was not released cleanly: %s", task.exception())

    async def expire(self) -> None:
        """Expire every connection (``Pool.expire_connections``), after a restart: the kept ones
        now, those in use when they come back."""
        await self.pool.expire_connections()  # first: connections the pool lends from now on are fresh
        self._stale |= self._lent
        self._give_back_kept()

    async def close(self) -> None:
        """Give every kept connection back, then close the pool (which waits for those in use)."""
        self._closing = True
        self._give_back_kept()
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:  # callers waiting for a connection: none will come
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("pool is closing"))
        await self.pool.close()

    def _give_back_kept(self) -> None:
        kept, self._kept = self._kept, []
        for connection in kept:
            self._give_back(connection)
