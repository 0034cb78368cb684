"""The app's Redis client (``CONDUIT_CACHE_URL``) and what it does when Redis goes away.

One ``RedisClient`` per app, built by the app factory and closed when the app shuts down; the
stores that keep state in Redis (``db/budget.py`` ``RedisBudgetStore``, ``auth/ratelimit.py``
``RedisCounters``) share it. redis-py's asyncio client keeps a pool of connections.

Redis is never a reason to fail a request. Every call is bounded by ``timeout`` seconds and is
not retried (a charge whose reply was lost may have been applied: retrying could charge twice).
When a call fails, the store that made it degrades (each documents how) and reports it with
``unavailable``: one WARNING log line on ``conduit.redis`` when Redis stops answering (not one
per request: an outage under load would flood the log), a count per use for the metric
``conduit_redis_unavailable_total``, and a pause of ``pause`` seconds during which the stores
do not try Redis at all (``available`` is false), so an unreachable server costs every request
one timeout at most once per pause. The first call that succeeds after it logs INFO
"Redis answers again".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger("conduit.redis")

UNAVAILABLE = (RedisError, OSError, TimeoutError)
"""What a failed call raises: redis-py wraps socket errors in its ``ConnectionError`` and
``TimeoutError``, but a few paths (DNS, TLS) surface ``OSError`` itself."""

PAUSE_SECONDS = 1.0
"""How long the stores leave Redis alone after a failed call (``RedisClient.pause``)."""


class RedisClient:
    """The app's connection pool to Redis at ``url`` and its availability (module docstring).

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
    ``unix://path``. ``timeout``: seconds a connect or a command may take. ``pause``: seconds
    without trying Redis after a failure. ``on_unavailable(use)`` is called once per operation
    that went on without Redis (the metric); ``use`` names the store (``budget``, ``auth_limits``,
    ``response_cache``).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        pause: float = PAUSE_SECONDS,
        on_unavailable: Callable[[str], None] | None = None,
    ) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # the module docstring: never retried
        )
        self.pause = pause
        self.on_unavailable = on_unavailable
        self._down = False
        self._retry_at = 0.0  # time.monotonic() before which Redis is not tried

    @property
    def available(self) -> bool:
        """Whether the stores should try Redis now: false for ``pause`` seconds after a failure."""
        return not self._down or time.monotonic() >= self._retry_at

    def answered(self) -> None:
        """Record a call that succeeded: ends an outage (logged once)."""
        if self._down:
            self._down = False
            logger.info("Redis answers again", extra={"event": "redis_available"})

    def unavailable(self, use: str, error: BaseException | None = None) -> None:
        """Record that ``use`` went on without Redis: counted always, logged once per outage.

        ``error`` is what the call raised, ``None`` when Redis was not tried (``available`` false).
        """
        if self.on_unavailable is not None:
            self.on_unavailable(use)
        if error is None:
            return
        self._retry_at = time.monotonic() + self.pause
        if not self._down:
            self._down = True
            logger.warning(
                "Redis unavailable (%s: %s); the cost budget is not charged, auth rate limits are counted "
                "in the database and responses are not cached until it answers",
                type(error).__name__,
                error,
                extra={"event": "redis_unavailable", "use": use},
            )

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.client.aclose()
