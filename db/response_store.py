"""The shared response cache's storage in Redis (``CONDUIT_CACHE_URL``): entries, tags, purge epochs.

Used by ``graph/responses/cache.py`` when the app has Redis, so every replica reads and purges
the same entries. Three Lua scripts, each atomic in Redis:

- ``lookup``: the entry under a key, or, on a miss, the purge epoch of every kind of tag (one
  round trip);
- ``store``: keeps an entry only if no kind of tag it carries was purged since the lookup's
  epochs were read (a reader that began before a write committed never stores what it read
  after the write's purge), with a TTL, indexed under each tag;
- ``purge``: bumps the epoch of each tag's kind (``kind_of``) and deletes every entry indexed
  under the tags; ``FLUSH`` deletes every entry.

Keys (all under ``conduit:rc:``): ``e:<key>`` an entry (bytes, expires by itself), ``t:<tag>``
a sorted set of the entry keys holding that tag scored by expiry (ms since the epoch), which
expires with its last entry, ``all`` the same for every entry (its cardinality is the size
``/metrics`` shows), ``epochs`` a hash of kind to purge count. Expired members leave the
sorted sets when the next entry is stored under them. Entries are opaque bytes here.

Redis unavailable: the calls raise ``ResponseStoreUnavailable`` after reporting it with
``RedisClient.unavailable("response_cache")`` (one log line per outage, a count per call); the
caller then answers without the cache. A purge that failed is kept and retried before this
process's next lookup, which misses until it succeeds: this process never serves an entry that
escaped its purge. Another replica that still reaches Redis may, until the entry expires or the
purge gets through (a partition between one replica and Redis; the same Redis down for all
replicas serves nobody).
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

# KEYS: entry, epochs, all, t:<tag>...; ARGV: value, ttl (ms), now (ms), n, kinds (n)..., epochs (n)...
STORE_SCRIPT = """
local n = tonumber(ARGV[4])
for i = 1, n do
  local current = redis.call('HGET', KEYS[2], ARGV[4 + i]) or '0'
  if current ~= ARGV[4 + n + i] then return -1 end
end
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 3, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], now + ttl, KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return redis.call('ZCARD', KEYS[3])
"""

# KEYS: epochs, all, t:<tag>...; ARGV: flush ('1': every entry, not the tags'), kinds...
PURGE_SCRIPT = """
for i = 2, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
local sets = {}
if ARGV[1] == '1' then sets = {KEYS[2]} else for i = 3, #KEYS do sets[#sets + 1] = KEYS[i] end end
for _, set in ipairs(sets) do
  local members = redis.call('ZRANGE', set, 0, -1)
  for j = 1, #members, 500 do
    local batch = {unpack(members, j, math.min(j + 499, #members))}
    redis.call('DEL', unpack(batch))
    redis.call('ZREM', KEYS[2], unpack(batch))
  end
  if set ~= KEYS[2] then redis.call('DEL', set) end
end
return redis.call('ZCARD', KEYS[2])
"""


FLUSH = "*"
"""The tag of a purge of every entry."""


def kind_of(tag: str) -> str:
    """The kind a tag counts as for the purge epochs, the text before its first ``#``, ``@`` or ``/``:
    ``Article#12/comments`` → ``Article`` (``graph/responses/tags.py``)."""
    for position, character in enumerate(tag):
        if character in "#@/":
            return tag[:position]
    return tag


class ResponseStoreUnavailable(Exception):
    """Redis did not answer (or is paused after a failure); reported already."""


def _tag_key(tag: str) -> str:
    return PREFIX + "t:" + tag


class RedisResponseStore:
    """Entries in the Redis of ``redis`` (module docstring); ``entries`` is the last count Redis gave.

    ``kinds``: every kind of tag (``kind_of``), whose epochs a ``FLUSH`` moves.
    """

    def __init__(self, redis: RedisClient, kinds: Sequence[str]) -> None:
        self.redis = redis
        self.kinds = tuple(kinds)  # every kind there is: a FLUSH moves all their epochs
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

    async def store(
        self, key: str, value: bytes, ttl_seconds: int, epochs: Iterable[tuple[str, int]], tags: Iterable[str]
    ) -> bool:
        """Keep ``value`` for ``ttl_seconds``, indexed under ``tags``, unless the epoch of one of the
        kinds in ``epochs`` (``(kind, epoch read at lookup)``) moved since; whether kept."""
        pairs = list(epochs)
        keys = [PREFIX + "e:" + key, EPOCHS, ALL, *map(_tag_key, tags)]
        args: list[Any] = [value, ttl_seconds * 1000, int(time.time() * 1000), len(pairs)]
        args += [kind for kind, _ in pairs] + [str(epoch) for _, epoch in pairs]
        count = await self._call(lambda: self._store(keys=keys, args=args))
        if count < 0:
            return False
        self.entries = int(count)
        return True

    async def purge(self, tags: Iterable[str]) -> None:
        """Bump the epochs of the tags' kinds and delete the tags' entries (``FLUSH`` among them: every
        entry); a failure is kept for the next lookup."""
        names = sorted(set(tags) | self._pending)
        if not names:
            return
        flush = FLUSH in names
        kinds = sorted(self.kinds if flush else {kind_of(name) for name in names})
        keys = [EPOCHS, ALL] if flush else [EPOCHS, ALL, *map(_tag_key, names)]
        try:
            count = await self._call(lambda: self._purge(keys=keys, args=["1" if flush else "0", *kinds]))
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
