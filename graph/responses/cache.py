"""The shared response cache: whole answers of cacheable queries, served before parsing, purged by writes.

**What is kept.** The answer of a query whose cache policy (``graph/cache_control.py``) has a
``maxAge`` above 0, with no error at all (a partial error, ``RATE_LIMITED``, a refusal: never),
holding no credential (``graph/transport/secrets.py``), for ``maxAge`` seconds. A ``public``
answer is the same for every viewer; a ``private`` one (``favorited``, ``following``...) is kept
only when the request is anonymous: an anonymous viewer is nobody, so every anonymous request
gets the same answer. A signed-in viewer's private answer is never kept nor served.

**Key** (``ResponseCache.key``): a 128-bit BLAKE2b of the app's version (the schema's SDL and
the package's version: a deploy never serves an older shape), the document's text (a persisted
document is resolved first, so ``documentId``, an APQ hash and the text share entries), the
operation name, the variables and the request's other ``extensions``, as JSON with sorted keys.
Not in it: the viewer (see above: an entry records whether it is private, and only anonymous
requests use private entries), nor the response media type, since only answers without errors
are kept, whose bodies and status (200) are the same under both.

**Where**: the HTTP transport looks up after reading the parameters and signing the viewer in
(a bad or suspended token is still a 401) and before admission, so a hit parses, validates,
prices and runs nothing. A hit is answered with the headers a miss sends (``Cache-Control``,
``Vary``, ``ETag`` on GET, ``304`` for a matching ``If-None-Match``) plus ``Age`` and
``X-Cache: HIT``.

**Purges.** Entries are tagged with the entities they hold (``Article#12``, ``User@jake``), the
connections below them (``Article#12/comments``) and the lists they answer (``Article/list``),
as read from the answer; each mutation says what it committed in the same terms
(``graph/responses/tags.py``). After a mutation ran (its transaction committed),
``RequestPipeline`` calls ``purge``, before the mutation's answer is sent. In
process, the store purges itself and, when the broker reaches other processes (PostgreSQL's
``LISTEN/NOTIFY``), publishes ``response_cache_purged`` so theirs do too. In Redis there is one
store for every replica: the writer purges it once, nothing is broadcast.

**The race.** A reader that began before a write committed may finish after the write's purge,
holding what it read before the commit. Each kind of entity has a purge epoch, moved by every
purge of a tag of that kind; a miss reads the epochs (the Redis lookup returns them in the same
round trip), and the answer is stored only if none of its tags' kinds' epochs moved since
(atomically in Redis: ``db/response_store.py``). So a purge is never undone by a slower reader,
and nobody sees a write's effect disappear.

**Redis unavailable**: no caching (every request is a miss and nothing is stored), never an
error; ``db/redis.py`` logs the outage once and counts ``conduit_redis_unavailable_total{use=
"response_cache"}``. A purge that could not reach Redis is retried before the next lookup.

**Budget**: a hit is not charged to the cost budget (GitHub's precedent: conditional requests
answered ``304`` do not count against the rate limit) and does not read it: its
``X-RateLimit-*`` headers are those known without reading the bucket (limit, reset, resource;
``graph/transport/ratelimit.py``). A miss is charged as always.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLSchema, OperationType
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from db.broker import Broker, Event, InProcessBroker
from db.response_store import RedisResponseStore, ResponseStoreUnavailable
from graph.cache_control import CachePolicy
from graph.caches import BoundedCache
from graph.responses.tags import FLUSH, KINDS, AnswerTags, kind_of, mutation_purges
from graph.transport.compression import MINIMUM_SIZE, gzip_body

if TYPE_CHECKING:
    from graph.admission.pipeline import Operation

logger = logging.getLogger("conduit.response_cache")

PURGED = "response_cache_purged"
"""The broker channel of purges, for the in-process stores of the other processes."""
MAX_BROADCAST_BYTES = 6_000
"""The most tag text a purge broadcasts; more is sent as ``FLUSH``. PostgreSQL's ``NOTIFY``
payload must stay under 8,000 bytes, the channel and the event's envelope included."""
ENTRY_OVERHEAD_BYTES = 300
TAGS_KEY = "response-tags"
"""The first item of a document's tag plan's key in the ``costs`` cache."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A kept answer: its body (UTF-8 JSON), policy, strong ETag, operation type and name, and when it was kept.

    ``gzipped``: the body gzip-compressed once when it was kept (``None``: compression is off, or
    the body is under ``MINIMUM_SIZE``), so that a hit for a client accepting gzip, as every
    browser does, does not compress it again.
    """

    body: bytes
    policy: CachePolicy
    etag: str
    operation_type: str
    operation_name: str | None
    created: float  # time.time()
    gzipped: bytes | None = None

    def encode(self) -> bytes:
        """The entry as bytes for Redis: a JSON header line, then the body, then the gzipped body if any."""
        header = [self.policy.max_age, self.policy.private, self.etag, self.operation_type, self.operation_name]
        return orjson.dumps([*header, self.created, len(self.body)]) + b"\n" + self.body + (self.gzipped or b"")

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The inverse of ``encode``."""
        header, rest = data.split(b"\n", 1)
        max_age, private, etag, operation_type, operation_name, created, length = orjson.loads(header)
        body, gzipped = rest[:length], rest[length:] or None
        return cls(body, CachePolicy(max_age, private), etag, operation_type, operation_name, created, gzipped)


@dataclass(slots=True)
class Lookup:
    """A lookup's outcome: the key, the entry on a hit, and on a miss the tags' epochs (``None``: do not store)."""

    key: str
    entry: Entry | None
    epochs: tuple[int, ...] | None


def kinds_of(tags: frozenset[str]) -> frozenset[str]:
    """The kinds whose purge epochs guard an answer with ``tags`` (``graph/responses/tags.py``, ``kind_of``)."""
    return frozenset(map(kind_of, tags))


class MemoryStore:
    """Entries in this process: a ``BoundedCache`` (LRU by entries and bytes) with a TTL per entry.

    ``tagged`` maps each tag to the keys of the entries holding it; keys of entries evicted or
    expired linger there until their tag is purged, or until there are more tags than
    ``compact_at`` (at first ``TAGS_PER_ENTRY`` per entry the cache may hold), when every set is
    filtered once and ``compact_at`` becomes at least twice the tags left.
    """

    name = "memory"
    TAGS_PER_ENTRY = 8

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.entries: BoundedCache[str, tuple[Entry, float]] = BoundedCache("responses", max_entries, max_bytes)
        self.epochs = dict.fromkeys(KINDS, 0)
        self.tagged: dict[str, set[str]] = {}
        self.compact_at = self.TAGS_PER_ENTRY * max_entries + 64

    def lookup(self, key: str) -> tuple[Entry | None, tuple[int, ...]]:
        """``(entry, ())`` on a hit, ``(None, epochs in KINDS order)`` on a miss."""
        found = self.entries.get(key)
        if found is not None:
            if found[1] > time.monotonic():
                return found[0], ()
            self.entries.discard(key)
        return None, tuple(self.epochs.values())

    def store(self, key: str, entry: Entry, tags: frozenset[str], epochs: tuple[int, ...]) -> bool:
        """Keep ``entry`` unless one of ``tags`` was purged since ``epochs`` were read; whether kept."""
        kinds = kinds_of(tags)
        if any(self.epochs[kind] != epoch for kind, epoch in zip(KINDS, epochs, strict=True) if kind in kinds):
            return False
        size = ENTRY_OVERHEAD_BYTES + len(key) + len(entry.body) + len(entry.gzipped or b"")
        if not self.entries.put(key, (entry, time.monotonic() + entry.policy.max_age), size):
            return False
        tagged = self.tagged
        for tag in tags:
            keys = tagged.get(tag)
            if keys is None:
                keys = tagged[tag] = set()
            keys.add(key)
            if len(keys) > 2 * self.entries.max_entries:  # evicted and expired keys linger until a purge
                tagged[tag] = {held for held in keys if held in self.entries}
        if len(tagged) > self.compact_at:
            live = ((tag, {held for held in keys if held in self.entries}) for tag, keys in tagged.items())
            self.tagged = {tag: keys for tag, keys in live if keys}
            # twice what is live, at least: filtering is then amortized over as many stores
            self.compact_at = max(self.compact_at, 2 * len(self.tagged))
        return True

    def purge(self, tags: frozenset[str]) -> None:
        """Bump the epoch of each tag's kind and forget its entries; ``FLUSH``: every entry."""
        if FLUSH in tags:
            for kind in KINDS:
                self.epochs[kind] += 1
            self.entries.clear()
            self.tagged = {}
            return
        for kind in kinds_of(tags):
            self.epochs[kind] += 1
        for tag in tags:
            for key in self.tagged.pop(tag, ()):
                self.entries.discard(key)


class ResponseCache:
    """The app's response cache (module docstring) over a ``MemoryStore`` or a ``RedisResponseStore``.

    ``schema`` gives the tags of documents (kept in ``tags_cache``, the app's ``costs`` cache);
    ``version`` goes into every key; ``broker`` and ``publish`` carry purges to the other
    processes' memory stores (``publish`` sends one event; ``None``: nothing to reach);
    ``compress`` (``CONDUIT_COMPRESSION``) keeps large bodies gzipped too.
    """

    def __init__(
        self,
        store: MemoryStore | RedisResponseStore,
        schema: GraphQLSchema,
        version: str,
        tags_cache: BoundedCache[Any, Any],
        broker: Broker | None = None,
        publish: Callable[[Event], Awaitable[None]] | None = None,
        compress: bool = False,
    ) -> None:
        self.store = store
        self.compress = compress  # keep a gzipped copy of large bodies (``Entry.gzipped``)
        self.schema = schema
        self.version = version
        self.tags_cache = tags_cache
        self.broker = broker if isinstance(store, MemoryStore) and not isinstance(broker, InProcessBroker) else None
        self.publish = publish
        self.origin = f"{os.getpid()}-{id(self)}"
        self.hits = 0
        self.misses = 0
        self.stores = 0
        self.skipped = 0  # answers not stored because a purge ran while they were computed
        self.purges = 0

    def key(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None, extensions: Any
    ) -> str | None:
        """The entry key of a request (module docstring); ``None`` when its variables are not plain JSON."""
        try:
            encoded = orjson.dumps(
                [self.version, query, operation_name, variables or None, extensions or None],
                option=orjson.OPT_SORT_KEYS,
            )
        except TypeError:
            return None
        return hashlib.blake2b(encoded, digest_size=16).hexdigest()

    async def lookup(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None, extensions: Any
    ) -> Lookup | None:
        """The entry for this request, or what a miss needs to store its answer; ``None``: not cacheable."""
        key = self.key(query, operation_name, variables, extensions)
        if key is None:
            return None
        store = self.store
        if isinstance(store, MemoryStore):
            entry, epochs = store.lookup(key)
        else:
            try:
                data, epochs = await store.lookup(key, KINDS)
            except ResponseStoreUnavailable:
                self.misses += 1
                return Lookup(key, None, None)
            entry = Entry.decode(data) if data is not None else None
        if entry is None:
            self.misses += 1
            return Lookup(key, None, epochs)
        self.hits += 1
        return Lookup(key, entry, None)

    def tags(self, operation: Operation, data: Any) -> frozenset[str]:
        """The tags of ``data``, ``operation``'s answer (``graph/responses/tags.py``), planned once per document."""
        plan = operation.remembered(
            self.tags_cache, TAGS_KEY, lambda: AnswerTags(self.schema, operation.parsed, operation.selected)
        )
        return plan.of(data, operation.coerced)

    async def keep(
        self, lookup: Lookup, operation: Operation, data: Any, body: bytes, etag: str, policy: CachePolicy
    ) -> None:
        """Store an answer the transport found cacheable (module docstring), unless a purge ran since ``lookup``.

        ``data`` is the answer's ``data``, ``body`` the whole answer encoded.
        """
        if lookup.epochs is None or policy.max_age <= 0 or operation.kind is not OperationType.QUERY:
            return
        gzipped = gzip_body(body) if self.compress and len(body) >= MINIMUM_SIZE else None
        entry = Entry(body, policy, etag, operation.kind.value, operation.name, time.time(), gzipped)
        tags = self.tags(operation, data)
        store = self.store
        if isinstance(store, MemoryStore):
            kept = store.store(lookup.key, entry, tags, lookup.epochs)
        else:
            kinds = kinds_of(tags)
            pairs = [(kind, epoch) for kind, epoch in zip(KINDS, lookup.epochs, strict=True) if kind in kinds]
            try:
                kept = await store.store(lookup.key, entry.encode(), policy.max_age, pairs, sorted(tags))
            except ResponseStoreUnavailable:
                return
        if kept:
            self.stores += 1
        else:
            self.skipped += 1

    async def after_mutation(self, operation: Operation, committed: set[str]) -> None:
        """Purge what the mutation ``operation`` changed (``RequestPipeline``, after it ran): the tags of
        what it ``committed`` and the bare kinds it declares (``MUTATION_PURGES``)."""
        tags = mutation_purges(self.schema, operation.parsed, operation.selected) | committed
        if tags:
            await self.purge(frozenset(tags))

    async def purge(self, tags: frozenset[str]) -> None:
        """Purge ``tags`` here (or in Redis), then in the other processes' memory stores; never raises."""
        self.purges += 1
        store = self.store
        if isinstance(store, MemoryStore):
            store.purge(tags)
        else:
            with contextlib.suppress(ResponseStoreUnavailable):  # reported; retried before the next lookup
                await store.purge(tags)
        if self.broker is not None and self.publish is not None:
            names = sorted(tags)
            if sum(len(name) + 4 for name in names) > MAX_BROADCAST_BYTES:
                names = [FLUSH]  # a deleted article's many comments: more than a NOTIFY carries
            try:
                await self.publish(Event(PURGED, {"tags": names, "origin": self.origin}))
            except Exception as error:  # the database is gone: its purge will be late, the answer stands
                logger.warning("could not broadcast a response cache purge: %s", error)

    async def follow_purges(self) -> None:
        """Apply the other processes' purges to the memory store, until cancelled (the app's lifespan)."""
        if self.broker is None or not isinstance(self.store, MemoryStore):
            return
        while True:
            try:
                async with self.broker.subscribe(PURGED) as events:
                    async for event in events:
                        self._purged_elsewhere(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("response cache purges not received (%s); retrying", error)
                self.store.purge(frozenset({FLUSH}))  # purges may have been missed meanwhile
                await asyncio.sleep(1.0)

    def _purged_elsewhere(self, event: Event) -> None:
        if event.payload.get("origin") == self.origin or not isinstance(self.store, MemoryStore):
            return
        tags = frozenset(tag for tag in event.payload.get("tags", ()) if isinstance(tag, str))
        self.store.purge(tags)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow the other processes' purges while the block runs."""
        task = asyncio.ensure_future(self.follow_purges())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _families() -> tuple[CounterMetricFamily | GaugeMetricFamily, ...]:
    labels = ["store"]
    return (
        CounterMetricFamily("conduit_response_cache_hits", "Requests answered from the response cache.", labels=labels),
        CounterMetricFamily(
            "conduit_response_cache_misses", "Cacheable-looking requests the cache could not answer.", labels=labels
        ),
        CounterMetricFamily("conduit_response_cache_stores", "Answers kept in the response cache.", labels=labels),
        CounterMetricFamily(
            "conduit_response_cache_skipped_stores",
            "Answers not kept because a write purged their tags while they were computed.",
            labels=labels,
        ),
        CounterMetricFamily("conduit_response_cache_purges", "Purges after mutations (this process's).", labels=labels),
        GaugeMetricFamily(
            "conduit_response_cache_entries",
            "Entries held (Redis: the count it gave with the last store or purge).",
            labels=labels,
        ),
        GaugeMetricFamily("conduit_response_cache_bytes", "Bytes the memory store's entries hold.", labels=labels),
    )


class ResponseCacheCollector(Collector):
    """``/metrics`` for the response cache, label ``store`` (``memory`` or ``redis``): hits, misses,
    stores, skipped stores and purges (counters, ``_total``), entries and bytes (gauges; bytes only
    for the memory store)."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        """The families, one sample each."""
        cache, store = self.cache, self.cache.store
        label = "memory" if isinstance(store, MemoryStore) else "redis"
        families = _families()
        entries = len(store.entries) if isinstance(store, MemoryStore) else store.entries
        values = [cache.hits, cache.misses, cache.stores, cache.skipped, cache.purges, entries]
        for family, value in zip(families, values, strict=False):
            family.add_metric([label], value)
        if isinstance(store, MemoryStore):
            families[-1].add_metric([label], store.entries.bytes)
        yield from families

    def describe(self) -> Iterator[Metric]:
        """The families without samples."""
        yield from _families()
