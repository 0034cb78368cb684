"""The app's response cache from its settings (``create_app``)."""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from graphql import GraphQLSchema, print_schema

from db.broker import Event
from db.response_store import RedisResponseStore
from graph.caches import COSTS
from graph.responses.cache import MemoryStore, ResponseCache, ResponseCacheCollector
from graph.responses.tags import KINDS

if TYPE_CHECKING:
    from graph.context import AppState
    from graph.observability import Metrics
    from graph.settings import Settings


def app_version(schema: GraphQLSchema) -> str:
    """What a deploy changes in answers' shapes: the schema's SDL and the package's version, hashed."""
    try:
        package = version("conduit-graphql")
    except PackageNotFoundError:  # run from a checkout without installing it
        package = "unknown"
    return hashlib.sha256(f"{package}\n{print_schema(schema)}".encode()).hexdigest()[:16]


def response_cache(
    settings: Settings, schema: GraphQLSchema, state: AppState, metrics: Metrics
) -> ResponseCache | None:
    """The response cache (``graph/responses/cache.py``): in Redis when the app has it, else in process;
    ``None`` when ``CONDUIT_RESPONSE_CACHE`` is off. Registers its metrics."""
    if not settings.response_cache:
        return None
    store: MemoryStore | RedisResponseStore
    if state.redis is not None:
        store = RedisResponseStore(state.redis, KINDS)
    else:
        store = MemoryStore(settings.response_cache_max_entries, settings.response_cache_max_bytes)
    broker, db = state.broker, state.db

    async def publish(event: Event) -> None:
        if not broker.transactional:
            await broker.publish(event)
            return
        async with db.engine.begin() as connection:  # a pooled connection: NOTIFY, committed at once
            await broker.publish(event, connection)

    cache = ResponseCache(
        store, schema, app_version(schema), state.caches[COSTS], broker, publish, compress=settings.compression
    )
    metrics.register(ResponseCacheCollector(cache))
    return cache
