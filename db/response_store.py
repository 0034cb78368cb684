"""The shared response cache's storage in Redis (``CONDUIT_CACHE_URL``): entries, tags, purge epochs.

Used by ``graph/responses/cache.py`` when the app has Redis, so every replica reads and purges
the same entries. Three Lua scripts, each atomic in Redis:

- ``lookup``: the entry under a key, or, on a miss, the purge epoch of every tag (one round trip);
- ``store``: keeps an entry only if no tag it carries was purged since the lookup's epochs were
  read (a reader that began before a write committed never stores what it read after the
  write's purge), with a TTL, indexed under each tag;
- ``purge``: bumps the epoch of each tag and deletes every entry indexed under it.

Keys (all under ``conduit:rc:``): ``e:<key>`` an entry (bytes, expires by itself), ``t:<tag>``
a sorted set of the entry keys holding that tag scored by expiry (ms since the epoch),
``all`` the same for every entry (its cardinality is the size ``/metrics`` shows), ``epochs``
a hash of tag to purge count. Expired members leave the sorted sets when the next entry is
stored. Entries are opaque bytes here.

Redis unavailable: the calls raise ``ResponseStoreUnavailable`` after reporting it with
``RedisClient.unavailable("response_cache")`` (one log line per outage, a count per call); the
caller then answers without the cache. A purge that failed is kept and retried before the next
lookup, which misses until it succeeds: an entry that escaped a purge is never served.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from db.redis import UNAVAILABLE, RedisClient

PREFIX = "conduit:rc:"
EPOCHS = PREFIX + "epochs"
ALL = PREFIX + "all"
USE = "response_cache"

LOOKUP_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
return {0, redis.call('HMGET', KEYS[2], unpack(ARGV))}
"""

# KEYS: entry, epochs, all, t:<tag>...; ARGV: value, ttl (ms), now (ms), tags..., epochs...
STORE_SCRIPT = """
local n = #KEYS - 3
for i = 1, n do
  local current = redis.call('HGET', KEYS[2], ARGV[3 + i]) or '0'
  if current ~= ARGV[3 + n + i] then return -1 end
end
local now = tonumber(ARGV[3])
local expires = now + tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 3, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], expires, KEYS[1])
end
return redis.call('ZCARD', KEYS[3])
"""

# KEYS: epochs, all, t:<tag>...; ARGV: tags...
PURGE_SCRIPT = """
for i = 1, #ARGV do
  redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  local members = redis.call('ZRANGE', KEYS[2 + i], 0, -1)
  for j = 1, #members, 500 do
    local batch = {unpack(members, j, math.min(j + 499, #members))}
    redis.call('DEL', unpack(batch))
    redis.call('ZREM', KEYS[2], unpack(batch))
  end
  redis.call('DEL', KEYS[2 + i])
end
return redis.call('ZCARD', KEYS[2])
"""


class ResponseStoreUnavailable(Exception):
    """Redis did not answer (or is paused after a failure); reported already."""


def _tag_key(tag: str) -> str:
    return PREFIX + "t:" + tag


class RedisResponseStore:
    """Entries in the Redis of ``redis`` (module docstring); ``entries`` is the last count Redis gave."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._lookup = redis.client.register_script(LOOKUP_SCRIPT)
        self._store = redis.client.register_script(STORE_SCRIPT)
        self._purge = redis.client.register_script(PURGE_SCRIPT)
        self.entries = 0
        self._pending: set[str] = set()  # tags of purges that failed, retried before the next lookup

    async def lookup(self, key: str, tags: Sequence[str]) -> tuple[bytes | None, tuple[int, ...]]:
        """``(entry, ())`` on a hit, ``(None, epochs of tags)`` on a miss; ``ResponseStoreUnavailable``."""
        if self._pending:
            await self.purge(set(self._pending))
        found = await self._call(lambda: self._lookup(keys=[PREFIX + "e:" + key, EPOCHS], args=list(tags)))
        if found[0] == 1:
            return bytes(found[1]), ()
        return None, tuple(int(epoch or 0) for epoch in found[1])

    async def store(self, key: str, value: bytes, ttl_seconds: int, tags: Iterable[tuple[str, int]]) -> bool:
        """Keep ``value`` for ``ttl_seconds`` unless a tag's epoch moved from the one given; whether kept."""
        pairs = list(tags)
        keys = [PREFIX + "e:" + key, EPOCHS, ALL, *(_tag_key(tag) for tag, _ in pairs)]
        args: list[Any] = [value, ttl_seconds * 1000, int(time.time() * 1000)]
        args += [tag for tag, _ in pairs] + [str(epoch) for _, epoch in pairs]
        count = await self._call(lambda: self._store(keys=keys, args=args))
        if count < 0:
            return False
        self.entries = int(count)
        return True

    async def purge(self, tags: Iterable[str]) -> None:
        """Bump each tag's epoch and delete its entries; a failure is kept for the next lookup."""
        names = sorted(set(tags) | self._pending)
        if not names:
            return
        try:
            count = await self._call(lambda: self._purge(keys=[EPOCHS, ALL, *map(_tag_key, names)], args=names))
        except ResponseStoreUnavailable:
            self._pending.update(names)
            raise
        self._pending.clear()
        self.entries = int(count)

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self.redis.available:  # paused after a failure: not tried
            self.redis.unavailable(USE)
            raise ResponseStoreUnavailable
        try:
            result = await call()
        except UNAVAILABLE as error:
            self.redis.unavailable(USE, error)
            raise ResponseStoreUnavailable from error
        self.redis.answered()
        return result
