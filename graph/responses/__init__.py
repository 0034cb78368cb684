"""The shared response cache (``cache.py``) and the tags its entries and purges use (``tags.py``)."""

from graph.responses.cache import Entry, Lookup, MemoryStore, ResponseCache, ResponseCacheCollector

__all__ = ["Entry", "Lookup", "MemoryStore", "ResponseCache", "ResponseCacheCollector"]
