"""``graph/caches.py``: the bounds, the LRU order and the counters of ``BoundedCache``, and its metrics.

The app's caches are then read through ``/metrics`` of the real app, on SQLite only: no cache
touches the database.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from graph.caches import APQ, BoundedCache, CacheCollector
from graph.settings import Settings
from graph.transport.persisted import sha256_hex
from tests.conftest import GQL, User
from tests.security.conftest import serving
from tests.test_observability import metric

TAGS = "query Tags { tags(first: 3) }"


def filled(max_entries: int, max_bytes: int, *keys: str, size: int = 10) -> BoundedCache[str, str]:
    cache: BoundedCache[str, str] = BoundedCache("test", max_entries, max_bytes)
    for key in keys:
        assert cache.put(key, key.upper(), size)
    return cache


def test_the_least_recently_used_entry_goes_past_max_entries() -> None:
    cache = filled(3, 1000, "a", "b", "c")
    assert cache.get("a") == "A"  # now the most recently used
    cache.put("d", "D", 10)
    assert cache.get("b") is None
    assert [cache.get(key) for key in "acd"] == ["A", "C", "D"]
    assert len(cache) == 3 and cache.bytes == 30 and cache.evictions == 1


def test_entries_go_until_the_bytes_fit() -> None:
    cache = filled(100, 100, "a", "b", "c", "d")
    assert cache.put("big", "BIG", 75)  # 40 + 75 > 100: a and b go, c and d stay
    assert cache.evictions == 2 and cache.bytes == 95
    assert [cache.get(key) for key in ("a", "b", "c", "d", "big")] == [None, None, "C", "D", "BIG"]


def test_an_entry_larger_than_the_byte_bound_is_not_kept() -> None:
    cache = filled(10, 100, "a", "b")
    assert not cache.put("huge", "HUGE", 101)
    assert cache.get("huge") is None
    assert len(cache) == 2 and cache.bytes == 20 and cache.evictions == 0  # nothing made room for it
    assert cache.put("whole", "WHOLE", 100)  # exactly the bound: kept, alone
    assert len(cache) == 1 and cache.bytes == 100


def test_replacing_a_key_counts_its_new_size_only() -> None:
    cache = filled(10, 100, "a", "b")
    cache.put("a", "A2", 50)
    assert cache.bytes == 60 and len(cache) == 2 and cache.evictions == 0
    cache.put("c", "C", 10)
    cache.put("d", "D", 40)  # over 100: b is the least recently used now, then c
    assert cache.get("b") is None and cache.get("a") == "A2"
    assert not cache.put("a", "A3", 500)  # refused, and the old value is not served any more
    assert cache.get("a") is None


def test_counters_and_clear() -> None:
    cache = filled(2, 100, "a", "b", "c")
    assert cache.get("c") == "C" and cache.get("b") == "B" and cache.get("a") is None
    assert (cache.hits, cache.misses, cache.evictions) == (2, 1, 1)
    cache.discard("b")
    cache.discard("nothing")
    assert len(cache) == 1 and cache.bytes == 10
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and cache.get("c") is None
    assert (cache.hits, cache.misses, cache.evictions) == (2, 2, 1)


@pytest.mark.parametrize(("max_entries", "max_bytes"), [(0, 100), (10, 0)])
def test_a_cache_with_a_zero_bound_keeps_nothing(max_entries: int, max_bytes: int) -> None:
    cache: BoundedCache[str, str] = BoundedCache("off", max_entries, max_bytes)
    assert not cache.put("a", "A", 0)
    assert cache.get("a") is None and len(cache) == 0


def test_sizes_and_bounds_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        BoundedCache("bad", -1, 10)
    with pytest.raises(ValueError, match="size"):
        filled(1, 10).put("a", "A", -1)


def test_the_collector_shows_every_cache() -> None:
    plans = filled(5, 100, "a", "b")
    plans.get("a")
    plans.get("x")
    empty: BoundedCache[str, int] = BoundedCache("empty", 1, 1)
    registry = CollectorRegistry()
    registry.register(CacheCollector([plans, empty]))
    samples = {
        (sample.name, sample.labels["cache"]): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert {name: value for (name, cache), value in samples.items() if cache == "test"} == {
        "conduit_cache_entries": 2,
        "conduit_cache_max_entries": 5,
        "conduit_cache_bytes": 20,
        "conduit_cache_max_bytes": 100,
        "conduit_cache_hits_total": 1,
        "conduit_cache_misses_total": 1,
        "conduit_cache_evictions_total": 0,
    }
    assert samples[("conduit_cache_entries", "empty")] == 0


# The app's caches on /metrics


@pytest.fixture
def engine_name() -> str:
    return "sqlite"


async def apq_post(client: httpx.AsyncClient, digest: str, query: str | None = None) -> httpx.Response:
    body: dict[str, object] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    return await client.post("/graphql", json=body)


async def test_metrics_show_every_cache_and_its_bounds(client: httpx.AsyncClient, settings: Settings) -> None:
    for name in ("plans", "costs", "variables", "apq", "tokens"):
        assert await metric(client, "conduit_cache_entries", cache=name) is not None, name
        assert await metric(client, "conduit_cache_evictions_total", cache=name) == 0
    assert await metric(client, "conduit_cache_max_bytes", cache="plans") == settings.cache_plans_max_bytes
    assert await metric(client, "conduit_cache_max_entries", cache="apq") == settings.apq_cache_size


async def test_reusing_an_apq_hash_counts_hits(client: httpx.AsyncClient) -> None:
    digest = sha256_hex(TAGS)
    assert (await apq_post(client, digest)).json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert await metric(client, "conduit_cache_misses_total", cache="apq") == 1
    assert await metric(client, "conduit_cache_entries", cache="apq") == 0
    assert (await apq_post(client, digest, TAGS)).json() == {"data": {"tags": []}}
    assert await metric(client, "conduit_cache_entries", cache="apq") == 1
    assert (await metric(client, "conduit_cache_bytes", cache="apq") or 0) >= len(TAGS) + len(digest)
    for _ in range(3):
        assert (await apq_post(client, digest)).json() == {"data": {"tags": []}}
    assert await metric(client, "conduit_cache_hits_total", cache="apq") == 3


async def test_a_signed_in_client_hits_the_token_cache(client: httpx.AsyncClient, gql: GQL, alice: User) -> None:
    assert await metric(client, "conduit_cache_misses_total", cache="tokens") == 0  # signing is no lookup
    for _ in range(3):
        assert (await gql.ok("{ viewer { username } }", token=alice.token))["viewer"]["username"] == alice.username
    assert await metric(client, "conduit_cache_misses_total", cache="tokens") == 1  # verified once
    assert await metric(client, "conduit_cache_hits_total", cache="tokens") == 2
    assert (await metric(client, "conduit_cache_entries", cache="tokens") or 0) >= 1


async def test_a_flood_of_large_documents_stays_within_the_apq_budget(settings: Settings) -> None:
    budget = 64 * 1024
    async with serving(settings.model_copy(update={"cache_apq_max_bytes": budget})) as (app, gql):
        for i in range(20):
            document = f"query Q{i} {{ tags(first: 3) }} # {'x' * 30_000}"
            assert (await apq_post(gql.client, sha256_hex(document), document)).json() == {"data": {"tags": []}}
        huge = "query Huge { tags(first: 3) } # " + "x" * budget  # runs, but is not kept
        assert (await apq_post(gql.client, sha256_hex(huge), huge)).json() == {"data": {"tags": []}}
        store = app.state.conduit.caches[APQ]
        assert store.get(sha256_hex(huge)) is None
        assert await metric(gql.client, "conduit_cache_entries", cache="apq") == 2
        assert (await metric(gql.client, "conduit_cache_bytes", cache="apq") or 0) <= budget
        assert await metric(gql.client, "conduit_cache_evictions_total", cache="apq") == 18
