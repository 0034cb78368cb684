"""The app's caches: one LRU type bounded by entries and by bytes, a registry, and their metrics.

The app's caches (``AppState.caches``, one ``Caches`` per app) are ``BoundedCache``s, so none
grows with what clients send: a flood of distinct large documents evicts older entries instead
of growing the process, and an entry larger than its cache's whole byte budget is not kept.
``CacheCollector`` shows each cache's size and hit rate on ``/metrics``.

Not thread-safe: every cache is used from the event loop's thread only (request handling,
token verification and the ``/metrics`` scrape all run there).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auth.tokens import VERIFIED_TOKENS

if TYPE_CHECKING:
    from graph.settings import Settings

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# The caches' names, as ``Caches`` knows them and ``/metrics`` labels them.
DOCUMENTS = "documents"  # parsed, validated documents by text (graph/admission/document.py)
PLANS = "plans"  # planned operations by document and operation name (graph/execution/planned/)
COSTS = "costs"  # operation costs by document, operation and variables (graph/admission/cost.py), and cache policies
VARIABLES = "variables"  # coerced variables, likewise
APQ = "apq"  # automatic persisted queries by SHA-256 (graph/transport/persisted.py)
TOKENS = "tokens"  # verified access tokens (auth/tokens.py)
DEFAULT_MAX_ENTRIES = 1024


class BoundedCache(Generic[K, V]):
    """A least-recently-used map holding at most ``max_entries`` entries and ``max_bytes`` bytes.

    The caller measures each entry on ``put``: ``size`` is the bytes its key and value hold
    (``sys.getsizeof`` of a ``str`` is exact; use an estimate for structures). The cache's own
    bookkeeping, about 100 bytes an entry, is not counted: ``max_entries`` bounds it. A cache
    with either bound at 0 keeps nothing. Values are never ``None`` (``get``'s miss).

    ``get`` and ``put`` are O(1) (amortised: ``put`` may evict several entries at once, each
    once). Counters since creation: ``hits``, ``misses`` (``get``), ``evictions`` (entries
    dropped to make room; a replaced, refused or ``discard``-ed entry is not an eviction).
    ``bytes`` is the sum of the sizes of the entries held.
    """

    def __init__(self, name: str, max_entries: int, max_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError(f"cache {name!r}: max_entries and max_bytes must be 0 or more")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        # key -> (value, size in bytes), least recently used first
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held; neither a hit nor a use."""
        return key in self._entries

    def __repr__(self) -> str:
        return (
            f"BoundedCache({self.name!r}, {len(self)}/{self.max_entries} entries, {self.bytes}/{self.max_bytes} bytes)"
        )

    def get(self, key: K) -> V | None:
        """The value under ``key`` (now the most recently used), or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep ``value`` under ``key``, ``size`` bytes (key included); whether it was kept.

        It replaces any value under ``key``, then the least recently used entries go until
        both bounds hold. An entry larger than ``max_bytes`` is not kept (and the key's old
        value is dropped). Raises ``ValueError`` for a negative ``size``.
        """
        if size < 0:
            raise ValueError(f"cache {self.name!r}: size must be 0 or more, not {size}")
        self.discard(key)
        if size > self.max_bytes or self.max_entries == 0 or self.max_bytes == 0:
            return False
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.evictions += 1
        return True

    def discard(self, key: K) -> None:
        """Forget ``key`` if it is held (a stale value, say)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    def clear(self) -> None:
        """Forget every entry; the counters keep counting."""
        self._entries.clear()
        self.bytes = 0


class CacheLimits(NamedTuple):
    """A cache's bounds: entries, and bytes of keys and values as measured on ``put``."""

    max_entries: int
    max_bytes: int


class Caches:
    """The app's caches by name (``AppState.caches``), each a ``BoundedCache`` with its ``CacheLimits``.

    ``caches[APQ]`` is the cache named ``apq``; a name not in ``limits`` is a ``KeyError``.
    """

    def __init__(self, limits: Mapping[str, CacheLimits]) -> None:
        self._caches: dict[str, BoundedCache[Any, Any]] = {
            name: BoundedCache(name, bounds.max_entries, bounds.max_bytes) for name, bounds in limits.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Caches:
        """Every cache of the server, bytes from ``CONDUIT_CACHE_<NAME>_MAX_BYTES``.

        Entries: ``CONDUIT_APQ_CACHE_SIZE`` for APQ, ``VERIFIED_TOKENS`` for tokens,
        ``DEFAULT_MAX_ENTRIES`` for the others.
        """
        return cls(
            {
                DOCUMENTS: CacheLimits(DEFAULT_MAX_ENTRIES, settings.cache_documents_max_bytes),
                PLANS: CacheLimits(DEFAULT_MAX_ENTRIES, settings.cache_plans_max_bytes),
                COSTS: CacheLimits(DEFAULT_MAX_ENTRIES, settings.cache_costs_max_bytes),
                VARIABLES: CacheLimits(DEFAULT_MAX_ENTRIES, settings.cache_variables_max_bytes),
                APQ: CacheLimits(settings.apq_cache_size, settings.cache_apq_max_bytes),
                TOKENS: CacheLimits(VERIFIED_TOKENS, settings.cache_tokens_max_bytes),
            }
        )

    def __getitem__(self, name: str) -> BoundedCache[Any, Any]:
        return self._caches[name]

    def __iter__(self) -> Iterator[BoundedCache[Any, Any]]:
        return iter(self._caches.values())

    def __len__(self) -> int:
        return len(self._caches)


def _families() -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
    labels = ["cache"]
    return (
        GaugeMetricFamily("conduit_cache_entries", "Entries a cache holds.", labels=labels),
        GaugeMetricFamily("conduit_cache_max_entries", "Entries a cache may hold.", labels=labels),
        GaugeMetricFamily("conduit_cache_bytes", "Bytes a cache's entries hold, as measured on put.", labels=labels),
        GaugeMetricFamily("conduit_cache_max_bytes", "Bytes a cache's entries may hold.", labels=labels),
        CounterMetricFamily("conduit_cache_hits", "Lookups a cache answered.", labels=labels),
        CounterMetricFamily("conduit_cache_misses", "Lookups a cache could not answer.", labels=labels),
        CounterMetricFamily("conduit_cache_evictions", "Entries dropped to make room.", labels=labels),
    )


class CacheCollector(Collector):
    """Per cache (label ``cache``, its name): ``conduit_cache_entries``, ``conduit_cache_max_entries``,
    ``conduit_cache_bytes``, ``conduit_cache_max_bytes`` (gauges, bytes as measured on ``put``) and
    ``conduit_cache_hits_total``, ``conduit_cache_misses_total``, ``conduit_cache_evictions_total``.

    Read from ``caches`` at every scrape. A cache's hit rate is ``hits / (hits + misses)``, in PromQL
    ``rate(conduit_cache_hits_total[5m])`` divided by the same plus ``rate(conduit_cache_misses_total[5m])``.
    """

    def __init__(self, caches: Iterable[BoundedCache[Any, Any]]) -> None:
        self.caches = caches

    def collect(self) -> Iterator[Metric]:
        """The seven families, a sample per cache in each."""
        families = _families()
        for cache in self.caches:
            values = (
                len(cache),
                cache.max_entries,
                cache.bytes,
                cache.max_bytes,
                cache.hits,
                cache.misses,
                cache.evictions,
            )
            for family, value in zip(families, values, strict=True):
                family.add_metric([cache.name], value)
        yield from families

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so registering reads no cache."""
        yield from _families()
