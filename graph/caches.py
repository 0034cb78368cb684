"""PLACEHOLDER until the wt-cache branch lands: the app's bounded caches."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """LRU bounded by entries and bytes (placeholder)."""

    def __init__(self, name: str, max_entries: int, max_bytes: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes or self.max_entries <= 0:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, freed) = self._entries.popitem(last=False)
            self.bytes -= freed
            self.evictions += 1


class Caches:
    """The app's caches (placeholder)."""

    def __init__(self) -> None:
        mib = 1024 * 1024
        self.documents: BoundedCache[Any, Any] = BoundedCache("documents", 1024, 32 * mib)
        self.plans: BoundedCache[Any, Any] = BoundedCache("plans", 1024, 32 * mib)
        self.costs: BoundedCache[Any, Any] = BoundedCache("costs", 4096, 4 * mib)
        self.variables: BoundedCache[Any, Any] = BoundedCache("variables", 4096, 4 * mib)
