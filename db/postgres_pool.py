"""Driver SQL's PostgreSQL connections: asyncpg's pool, with the connections it lent kept and handed on.

asyncpg's ``Pool.acquire`` and ``release`` cost 12 to 16 µs of CPU per pair when a connection
is free (a task and a ``wait_for`` for the timeout, a proxy object, a shielded release), more
when callers queue for one, measured on the event loop of ``conduit serve``: about as much
as a planned page's statement costs the process itself. ``KeptConnections`` takes a
connection from the pool only while it holds fewer than the pool's ``max_size``; after a
statement that ended normally it keeps the connection instead of releasing it, and hands it
straight to the longest waiting caller, if any, else to the next ``acquire``: a list or a
future's operation. The pool still opens and closes every connection; a connection goes
back to it when its statement did not end normally (cancelled, timed out, broken: the pool
waits for a cancellation and closes what must be closed), and on ``expire``/``close``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg

__all__ = ["KeptConnections"]

_RETRY = object()
"""What a waiter is handed when a connection went back to the pool: room to take another from it."""


class KeptConnections:
    """``pool``'s connections, kept checked out between uses (module docstring).

    ``timeout``: seconds ``acquire`` waits for a connection (``TimeoutError`` after it, as
    asyncpg's pool raises).
    """

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.max_size: int = pool.get_max_size()
        self._kept: list[Any] = []  # most recently used last: its buffers and cache are warm
        self._held = 0  # connections taken from the pool and not given back: kept or in use
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._lent: set[int] = set()  # ids of the connections in use
        self._stale: set[int] = set()  # ... of those that were in use when the pool expired
        self._closing = False

    @property
    def kept(self) -> int:
        """How many connections are at hand, checked out of the pool and unused."""
        return len(self._kept)

    async def acquire(self) -> Any:
        """A connection (asyncpg's pool proxy): one at hand, else a new one of the pool's, else
        the next one given back, waiting up to ``timeout`` seconds in all."""
        kept = self._kept
        while kept:
            connection = kept.pop()
            if not connection.is_closed():
                self._lent.add(id(connection))
                return connection
            await self._give_back(connection)  # the server closed it: the pool forgets it
        if self._held >= self.max_size and not self._closing:
            async with asyncio.timeout(self.timeout):
                while True:
                    handed = await self._wait()
                    if handed is not _RETRY:
                        return handed  # already counted in _held and _lent
                    if self._held < self.max_size:
                        break
        self._held += 1
        try:
            connection = await self.pool.acquire(timeout=self.timeout)
        except BaseException:
            self._held -= 1
            self._hand_on(_RETRY)
            raise
        self._lent.add(id(connection))
        return connection

    async def _wait(self) -> Any:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            # a timeout or a cancellation may come just after a connection was handed over
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is _RETRY:
                    self._hand_on(_RETRY)
                else:
                    await self.release(handed)
            elif waiter in self._waiters:  # else ``_hand_on`` already passed it by
                self._waiters.remove(waiter)
            raise

    def _hand_on(self, handed: Any) -> bool:
        """Give ``handed`` (a connection, or ``_RETRY``) to the longest waiting caller; whether one took it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    async def release(self, connection: Any, *, reusable: bool = True) -> None:
        """Take ``connection`` back: to a waiting caller or kept when ``reusable``, else to the pool.

        ``reusable``: its statements ended normally (a result or a SQL error), so it is idle and
        outside any transaction.
        """
        key = id(connection)
        if key in self._stale:  # lent before the pool expired: the pool closes it
            self._stale.discard(key)
            reusable = False
        if reusable and not self._closing and not connection.is_closed() and not connection.is_in_transaction():
            if self._hand_on(connection):
                return  # still lent, to its new user
            self._lent.discard(key)
            self._kept.append(connection)
            return
        self._lent.discard(key)
        await self._give_back(connection)

    async def _give_back(self, connection: Any) -> None:
        self._held -= 1
        try:
            await self.pool.release(connection)
        finally:
            self._hand_on(_RETRY)  # room for a waiting caller to take a connection from the pool

    async def expire(self) -> None:
        """Expire every connection (``Pool.expire_connections``), after a restart: the kept ones
        now, those in use when they come back."""
        self._stale |= self._lent
        await self._give_back_kept()
        await self.pool.expire_connections()

    async def close(self) -> None:
        """Give every kept connection back, then close the pool (which waits for those in use)."""
        self._closing = True
        await self._give_back_kept()
        await self.pool.close()

    async def _give_back_kept(self) -> None:
        kept, self._kept = self._kept, []
        for connection in kept:
            await self._give_back(connection)
