"""The shared response cache (``graph/responses/``): hits, misses, purges, privacy, the race, Redis.

Through the real HTTP endpoint on both engines; the Redis tests run a real ``redis-server``
(``tests/redis.py``), the two-process tests two live servers (``tests/live.py``).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets
from graphql import GraphQLObjectType, get_named_type, is_abstract_type

from db.engine import Database
from db.models import article_table as a_
from db.models import comment_table, utcnow
from graph.admission.pipeline import Operation
from graph.cache_control import CachePolicy
from graph.cli import main
from graph.responses.cache import Entry
from graph.responses.tags import MUTATION_PURGES, TYPE_KINDS
from graph.schema import create_schema
from graph.settings import Settings
from graph.transport.compression import gzip_body
from tests.conftest import GQL, User, create_article, with_redis
from tests.graph.test_subscriptions import Client, register, ws_url
from tests.graph.test_subscriptions import post as live_post
from tests.live import live_app
from tests.redis import RedisServer
from tests.security.test_cost_budget import serving
from tests.waiting import until

HOME = """
query Home($first: Int!) {
  articles(first: $first) {
    totalCount
    edges { cursor node { slug title tagList favoritesCount favorited author { username following } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
PUBLIC = "{ articles(first: 5) { totalCount nodes { slug title favoritesCount author { username } } } }"
KINDLESS = {"PageInfo", "RateLimit", "Query"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with the response cache on (``tests/conftest.py`` turns it off)."""
    return settings.model_copy(update={"response_cache": True})


@asynccontextmanager
async def client_of(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def post(http: httpx.AsyncClient, query: str, variables: Any = None, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    return response


def metric(text: str, name: str, store: str = "memory") -> float:
    """One sample of a ``/metrics`` exposition, 0 when absent."""
    prefix = f'{name}{{store="{store}"}} ' if store else f"{name} "
    return next((float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)), 0.0)


async def metrics(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


def slugs(response: httpx.Response) -> list[str]:
    return [edge["node"]["slug"] for edge in response.json()["data"]["articles"]["edges"]]


async def sign_up(http: httpx.AsyncClient, username: str) -> User:
    data = (
        await post(
            http, REGISTER, {"input": {"username": username, "email": f"{username}@x.io", "password": "password123"}}
        )
    ).json()
    payload = data["data"]["register"]
    return User(
        username, f"{username}@x.io", "password123", payload["token"], payload["refreshToken"], payload["user"]["id"]
    )


REGISTER = "mutation R($input: RegisterInput!) { register(input: $input) { token refreshToken user { id } } }"


def test_every_mutation_declares_what_it_purges() -> None:
    """A new mutation must say which kinds it changes (``MUTATION_PURGES``); every type an answer can
    hold has a kind or is known to hold none, so no cached entity escapes its purges."""
    schema = create_schema(Settings(env="test", jwt_secret="x" * 40))._schema
    assert schema.mutation_type is not None
    assert set(schema.mutation_type.fields) == set(MUTATION_PURGES)
    reachable: set[str] = set()
    pending = [schema.query_type]
    while pending:
        parent = pending.pop()
        if parent is None or parent.name in reachable:
            continue
        reachable.add(parent.name)
        for field in parent.fields.values():
            target = get_named_type(field.type)
            if isinstance(target, GraphQLObjectType):
                pending.append(target)
            elif is_abstract_type(target):
                pending += schema.get_possible_types(target)
    assert reachable - set(TYPE_KINDS) == KINDLESS
    assert set(TYPE_KINDS) <= reachable


async def test_home_page_is_served_from_the_cache_until_a_write_purges_it(
    settings: Settings, alice: User, gql: GQL
) -> None:
    """A miss stores, the next request hits (same body, no SQL for the answer), a committed
    createArticle purges: the very next request shows the new article, then hits again."""
    await create_article(gql, alice, "First")
    async with serving(settings) as app, client_of(app) as http:
        miss = await post(http, HOME, {"first": 20})
        assert "x-cache" not in miss.headers
        hit = await post(http, HOME, {"first": 20})
        assert hit.headers["x-cache"] == "HIT" and hit.content == miss.content
        for name in ("cache-control", "vary", "content-type"):
            assert hit.headers[name] == miss.headers[name]
        assert hit.headers["cache-control"] == "private, max-age=30"  # favorited: anonymous only
        await post(
            http,
            "mutation C($i: CreateArticleInput!) { createArticle(input: $i) { slug } }",
            {"i": {"title": "Second", "description": "d", "body": "b"}},
            alice.token,
        )
        fresh = await post(http, HOME, {"first": 20})
        assert "x-cache" not in fresh.headers and slugs(fresh)[0].startswith("second")
        assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"
        text = await metrics(http)
        assert metric(text, "conduit_response_cache_hits_total") == 2
        assert metric(text, "conduit_response_cache_purges_total") == 1
        assert metric(text, "conduit_response_cache_entries") == 1
        assert metric(text, "conduit_response_cache_bytes") > len(fresh.content)


async def test_add_comment_on_the_planned_write_path_purges_the_article_page(
    settings: Settings, alice: User, gql: GQL
) -> None:
    article = await create_article(gql, alice)
    page = "query P($s: String!) { article(slug: $s) { title comments(first: 5) { nodes { body } } } }"
    async with serving(settings) as app, client_of(app) as http:
        await post(http, page, {"s": article["slug"]})
        assert (await post(http, page, {"s": article["slug"]})).headers["x-cache"] == "HIT"
        add = "mutation A($s: String!, $b: String!) { addComment(slug: $s, body: $b) { body } }"
        await post(http, add, {"s": article["slug"], "b": "first!"}, alice.token)
        after = await post(http, page, {"s": article["slug"]})
        assert "x-cache" not in after.headers
        assert after.json()["data"]["article"]["comments"]["nodes"] == [{"body": "first!"}]


async def test_a_hit_honours_if_none_match_and_sends_the_miss_headers(
    settings: Settings, alice: User, gql: GQL
) -> None:
    await create_article(gql, alice)
    async with serving(settings) as app, client_of(app) as http:
        params = {"query": PUBLIC}
        miss = await http.get("/graphql", params=params)
        hit = await http.get("/graphql", params=params)
        assert hit.headers["x-cache"] == "HIT" and hit.content == miss.content
        assert hit.headers["etag"] == miss.headers["etag"]
        assert hit.headers["cache-control"] == miss.headers["cache-control"] == "public, max-age=30"
        assert hit.headers["vary"] == "Accept" and int(hit.headers["age"]) >= 0
        not_modified = await http.get("/graphql", params=params, headers={"If-None-Match": miss.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["x-cache"] == "HIT" and not_modified.headers["etag"] == miss.headers["etag"]
        # the same answer over POST and under the other media type: the same entry
        other = await http.post("/graphql", json=params, headers={"Accept": "application/graphql-response+json"})
        assert other.headers["x-cache"] == "HIT"
        assert other.headers["content-type"].startswith("application/graphql-response+json")


async def test_a_large_hit_is_sent_gzipped_as_kept_with_the_misss_headers(
    settings: Settings, alice: User, gql: GQL
) -> None:
    """A body of 1 KiB or more is kept gzipped too: a hit for a client accepting gzip sends that
    copy with the headers the compression middleware gave the miss; identity clients get the body."""
    for index in range(5):
        await create_article(gql, alice, title=f"Article {index}: " + "a considerably longer title " * 4)
    async with serving(settings) as app, client_of(app) as http:
        params = {"query": PUBLIC}
        gzip_headers = {"Accept-Encoding": "gzip"}
        miss = await http.get("/graphql", params=params, headers=gzip_headers)
        hit = await http.get("/graphql", params=params, headers=gzip_headers)
        assert len(miss.content) >= 1024 and "x-cache" not in miss.headers and hit.headers["x-cache"] == "HIT"
        assert hit.content == miss.content  # httpx decodes both
        for name in ("content-encoding", "vary", "etag", "cache-control"):
            assert hit.headers[name] == miss.headers[name], name
        assert hit.headers["content-encoding"] == "gzip" and hit.headers["etag"].startswith('W/"')
        assert hit.headers["vary"] == "Accept, Accept-Encoding"
        identity = {"Accept-Encoding": "identity"}
        plain = await http.get("/graphql", params=params, headers=identity)
        assert plain.headers["x-cache"] == "HIT" and "content-encoding" not in plain.headers
        assert plain.content == miss.content and plain.headers["vary"] == "Accept, Accept-Encoding"
        assert not plain.headers["etag"].startswith("W/")
        not_modified = await http.get(
            "/graphql", params=params, headers={**gzip_headers, "If-None-Match": hit.headers["etag"]}
        )
        assert not_modified.status_code == 304 and "content-encoding" not in not_modified.headers


def test_an_entry_survives_its_redis_encoding_with_and_without_its_gzipped_copy() -> None:
    policy = CachePolicy(30, False)
    body = b'{"data":{"articles":[]}}' * 50
    for gzipped in (None, gzip_body(body)):
        entry = Entry(body, policy, '"tag"', "query", "Home", 1_800_000_000.5, gzipped)
        assert Entry.decode(entry.encode()) == entry
        if gzipped is not None:
            assert zlib.decompress(gzipped, 16 + zlib.MAX_WBITS) == body


async def test_a_signed_in_viewers_favorited_never_comes_from_or_goes_into_the_cache(
    settings: Settings, alice: User, bob: User, gql: GQL
) -> None:
    article = await create_article(gql, alice)
    await gql.ok(
        "mutation F($s: String!) { favoriteArticle(slug: $s) { favorited } }", {"s": article["slug"]}, bob.token
    )
    async with serving(settings) as app, client_of(app) as http:
        await post(http, HOME, {"first": 20})
        assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"  # anonymous: favorited false
        entries = metric(await metrics(http), "conduit_response_cache_entries")
        for _ in range(2):
            mine = await post(http, HOME, {"first": 20}, bob.token)
            assert "x-cache" not in mine.headers
            assert mine.json()["data"]["articles"]["edges"][0]["node"]["favorited"] is True
        assert metric(await metrics(http), "conduit_response_cache_entries") == entries  # nothing stored
        anonymous = await post(http, HOME, {"first": 20})
        assert anonymous.json()["data"]["articles"]["edges"][0]["node"]["favorited"] is False
        # a public answer is the same for everyone: a viewer may be served the anonymous entry
        await post(http, PUBLIC)
        assert (await post(http, PUBLIC, token=bob.token)).headers["x-cache"] == "HIT"
        # ...once signed in: a bad token is still a 401
        refused = await http.post("/graphql", json={"query": PUBLIC}, headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and "x-cache" not in refused.headers


async def test_answers_with_errors_are_never_stored(settings: Settings, alice: User, gql: GQL) -> None:
    await create_article(gql, alice)
    async with serving(settings) as app, client_of(app) as http:
        query = "{ articles(first: 1) { nodes { slug } } a: articles(first: 1000) { totalCount } }"
        for _ in range(2):
            response = await http.post("/graphql", json={"query": query})
            assert response.json()["errors"] and "x-cache" not in response.headers
        assert metric(await metrics(http), "conduit_response_cache_stores_total") == 0


async def test_hits_are_not_charged_and_carry_the_headers_known_without_the_budget(
    settings: Settings, alice: User, gql: GQL
) -> None:
    await create_article(gql, alice)
    async with serving(settings) as app, client_of(app) as http:
        miss = await post(http, PUBLIC)
        assert "x-ratelimit-used" in miss.headers
        used = (await post(http, "{ rateLimit { used } }")).json()["data"]["rateLimit"]["used"]
        hit = await post(http, PUBLIC)
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers["x-ratelimit-limit"] == miss.headers["x-ratelimit-limit"]
        assert hit.headers["x-ratelimit-reset"] == miss.headers["x-ratelimit-reset"]
        assert hit.headers["x-ratelimit-resource"] == "graphql"
        assert "x-ratelimit-remaining" not in hit.headers and "x-ratelimit-used" not in hit.headers
        assert (await post(http, "{ rateLimit { used } }")).json()["data"]["rateLimit"]["used"] == used


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_reader_that_began_before_a_write_does_not_store_after_its_purge(
    settings: Settings, alice: User, gql: GQL, store: str, request: pytest.FixtureRequest
) -> None:
    """The race: a miss that read the purge epochs before ``createArticle`` committed and finishes
    after its purge is not stored (in Redis, the store script checks the epochs atomically), so
    the next reader sees the new article, not the old page."""
    await create_article(gql, alice, "First")
    if store == "redis":
        settings = with_redis(settings, request.getfixturevalue("redis_url"))
    async with serving(settings) as app, client_of(app) as http:
        held, release = asyncio.Event(), asyncio.Event()

        async def hold_the_home_page(operation: Operation) -> None:
            if operation.query == HOME:
                held.set()
                await release.wait()

        app.state.conduit.admission.steps.insert(0, hold_the_home_page)
        reader = asyncio.ensure_future(post(http, HOME, {"first": 20}))
        await held.wait()  # looked up (a miss) and read the epochs; not executed yet
        await create_article(GQL(http), alice, "Second")
        release.set()
        await reader
        app.state.conduit.admission.steps.remove(hold_the_home_page)
        text = await metrics(http)
        assert metric(text, "conduit_response_cache_skipped_stores_total", store) == 1
        assert metric(text, "conduit_response_cache_stores_total", store) == 0
        after = await post(http, HOME, {"first": 20})
        assert "x-cache" not in after.headers and slugs(after)[0].startswith("second")


async def test_off(settings: Settings) -> None:
    async with serving(settings, response_cache=False) as app, client_of(app) as http:
        await post(http, PUBLIC)
        assert "x-cache" not in (await post(http, PUBLIC)).headers
        assert "conduit_response_cache_hits_total" not in await metrics(http)


def _live_get(url: str, query: str, variables: Any = None, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response


def _metrics_of(url: str) -> str:
    return httpx.get(f"{url}/metrics").text


async def test_two_processes_sharing_redis_show_a_new_article_right_after_it_commits(
    settings: Settings, redis_url: str
) -> None:
    """Replica B's cached home page shows the article replica A created, on the very next request:
    A purged the one shared store (Redis) before answering the mutation."""
    shared = with_redis(settings, redis_url)
    with live_app(shared) as (a, _), live_app(shared) as (b, _):
        user = _live_get(a, REGISTER, {"input": {"username": "ann", "email": "ann@x.io", "password": "password123"}})
        token = user.json()["data"]["register"]["token"]
        create = "mutation C($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        _live_get(a, create, {"i": {"title": "First", "description": "d", "body": "b"}}, token)
        _live_get(b, HOME, {"first": 20})
        cached = _live_get(b, HOME, {"first": 20})
        assert cached.headers["x-cache"] == "HIT" and len(slugs(cached)) == 1
        assert _live_get(a, HOME, {"first": 20}).headers["x-cache"] == "HIT"  # B's entry, in Redis
        _live_get(a, create, {"i": {"title": "Second", "description": "d", "body": "b"}}, token)
        after = _live_get(b, HOME, {"first": 20})
        assert "x-cache" not in after.headers and slugs(after)[0].startswith("second")
        text = _metrics_of(b)
        assert metric(text, "conduit_response_cache_hits_total", "redis") == 1
        assert metric(text, "conduit_response_cache_entries", "redis") >= 1


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["postgres"])  # several processes: PostgreSQL's LISTEN/NOTIFY
async def test_memory_stores_of_two_processes_purge_through_the_broker(settings: Settings) -> None:
    """Without Redis, each process keeps its own entries; a write on A reaches B's store through
    PostgreSQL's LISTEN/NOTIFY (asynchronously: B shows the article once the event arrived)."""
    shared = settings
    with live_app(shared) as (a, _), live_app(shared) as (b, app_b):
        user = _live_get(a, REGISTER, {"input": {"username": "ann", "email": "ann@x.io", "password": "password123"}})
        token = user.json()["data"]["register"]["token"]
        create = "mutation C($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        _live_get(b, HOME, {"first": 20})
        assert _live_get(b, HOME, {"first": 20}).headers["x-cache"] == "HIT"
        await until(lambda: app_b.state.conduit.broker.subscriber_count("response_cache_purged") == 1, "B listens")
        _live_get(a, create, {"i": {"title": "Second", "description": "d", "body": "b"}}, token)

        def shows_it() -> bool:
            return slugs(_live_get(b, HOME, {"first": 20})) != []

        await until(shows_it, "B's home page to show the new article")


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["postgres"])
async def test_a_purge_too_large_for_a_notify_reaches_the_other_processes_as_a_flush(settings: Settings) -> None:
    """Deleting an article touches each of its comments: 700 of them are more tag text than a
    NOTIFY payload may carry (8,000 bytes), so the purge goes out as a purge of everything."""
    with live_app(settings) as (a, _), live_app(settings) as (b, app_b):
        user = _live_get(a, REGISTER, {"input": {"username": "ann", "email": "ann@x.io", "password": "password123"}})
        token = user.json()["data"]["register"]["token"]
        create = "mutation C($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        created = _live_get(a, create, {"i": {"title": "Busy", "description": "d", "body": "b"}}, token).json()
        slug = created["data"]["createArticle"]["slug"]
        db = Database(settings.database_url)  # the comments in one statement: 700 mutations take 20 s
        try:
            async with db.engine.begin() as connection:
                article_id = (
                    await connection.execute(sa.select(a_.c.id, a_.c.author_id).where(a_.c.slug == slug))
                ).one()
                now = utcnow()
                rows = [
                    {
                        "body": f"comment {n}",
                        "article_id": article_id[0],
                        "author_id": article_id[1],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(700)
                ]
                await connection.execute(sa.insert(comment_table), rows)
        finally:
            await db.dispose()
        page = "query P($s: String!) { article(slug: $s) { title } }"
        _live_get(b, page, {"s": slug})
        assert _live_get(b, page, {"s": slug}).headers["x-cache"] == "HIT"
        await until(lambda: app_b.state.conduit.broker.subscriber_count("response_cache_purged") == 1, "B listens")
        _live_get(a, "mutation D($s: String!) { deleteArticle(slug: $s) }", {"s": slug}, token)
        await until(lambda: _live_get(b, page, {"s": slug}).json()["data"]["article"] is None, "B's page purged")


async def test_redis_going_away_degrades_to_no_caching(
    settings: Settings, alice: User, gql: GQL, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped mid-run: every answer is still right (misses, nothing stored), one WARNING and
    a count per request; a purge made meanwhile is applied before Redis is used again."""
    caplog.set_level(logging.INFO, logger="conduit.redis")
    await create_article(gql, alice, "First")
    server = RedisServer()
    try:
        server.start()
        async with serving(with_redis(settings, server.url(), rate_limit_points=0)) as app, client_of(app) as http:
            app.state.conduit.redis.pause = 0.0  # try Redis on every request
            await post(http, HOME, {"first": 20})
            assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"
            server.stop()
            for _ in range(2):
                response = await post(http, HOME, {"first": 20})
                assert "x-cache" not in response.headers and len(slugs(response)) == 1
            await create_article(GQL(http), alice, "Second")  # its purge cannot reach Redis
            assert slugs(await post(http, HOME, {"first": 20}))[0].startswith("second")
            text = await metrics(http)
            assert metric(text, 'conduit_redis_unavailable_total{use="response_cache"}', store="") >= 4
            warnings = [r for r in caplog.records if getattr(r, "event", None) == "redis_unavailable"]
            assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
            server.start()  # empty: nothing stale could be left anyway, but the pending purge runs first
            fresh = await post(http, HOME, {"first": 20})
            assert "x-cache" not in fresh.headers and len(slugs(fresh)) == 2
            assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"
    finally:
        server.destroy()


async def test_a_purge_that_missed_redis_is_applied_before_the_next_lookup(
    settings: Settings, alice: User, gql: GQL, redis_url: str
) -> None:
    """Redis unreachable only for the purge (a partition): the entry it kept is never served."""
    await create_article(gql, alice, "First")
    async with serving(with_redis(settings, redis_url)) as app, client_of(app) as http:
        await post(http, HOME, {"first": 20})
        assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"
        redis = app.state.conduit.redis
        redis.pause = 600.0
        redis.unavailable("response_cache", OSError("partition"))  # paused: the purge below is not sent
        await create_article(GQL(http), alice, "Second")
        redis.answered()  # the partition heals
        after = await post(http, HOME, {"first": 20})
        assert "x-cache" not in after.headers and slugs(after)[0].startswith("second")


async def test_a_mutation_over_websocket_purges_too(settings: Settings) -> None:
    """``graphql-transport-ws`` carries mutations as well: the same purge runs after them."""
    with live_app(settings) as (url, _app):
        token = await register(url, "ann")
        create = "mutation C($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        await live_post(url, create, {"i": {"title": "First", "description": "d", "body": "b"}}, token)
        async with httpx.AsyncClient(base_url=url) as http:
            await post(http, HOME, {"first": 20})
            assert (await post(http, HOME, {"first": 20})).headers["x-cache"] == "HIT"
            subprotocol = websockets.Subprotocol("graphql-transport-ws")
            async with websockets.connect(ws_url(url), subprotocols=[subprotocol]) as ws:
                client = Client(ws, "graphql-transport-ws")
                assert (await client.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
                await client.subscribe(create, {"i": {"title": "Second", "description": "d", "body": "b"}})
                assert (await client.next_payload())["data"]["createArticle"]["slug"].startswith("second")
            after = await post(http, HOME, {"first": 20})
            assert "x-cache" not in after.headers and slugs(after)[0].startswith("second")


async def test_a_websocket_viewer_renamed_since_connecting_purges_under_the_new_name(settings: Settings) -> None:
    """A WebSocket connection's viewer is read once, at ``connection_init``; a mutation on it must
    purge under the username the database has now, not the one the connection began with."""
    with live_app(settings) as (url, _app):
        token = await register(url, "ann")
        subprotocol = websockets.Subprotocol("graphql-transport-ws")
        async with (
            websockets.connect(ws_url(url), subprotocols=[subprotocol]) as ws,
            httpx.AsyncClient(base_url=url) as http,
        ):
            client = Client(ws, "graphql-transport-ws")
            assert (await client.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
            rename = 'mutation { updateViewer(input: {username: "anna"}) { username } }'
            await live_post(url, rename, token=token)
            profile = 'query P { user(username: "anna") { articles(first: 5) { totalCount } followingCount } }'
            await post(http, profile)
            assert (await post(http, profile)).headers["x-cache"] == "HIT"
            create = 'mutation { createArticle(input: {title: "New", description: "d", body: "b"}) { slug } }'
            await client.subscribe(create, {})
            assert (await client.next_payload())["data"]["createArticle"]["slug"].startswith("new")
            after = await post(http, profile)
            assert "x-cache" not in after.headers
            assert after.json()["data"]["user"]["articles"]["totalCount"] == 1


async def test_the_command_line_purges_the_servers_caches(
    settings: Settings, engine_name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """``conduit user set-role`` and ``user delete`` change what the API shows: a server's cached
    profile goes. On SQLite the command purges Redis (the servers' shared store) before it
    returns; on PostgreSQL, without Redis, the servers' own stores hear it with the commit
    (``response_cache_purged``), a moment later."""
    if engine_name == "sqlite":
        settings = with_redis(settings, request.getfixturevalue("redis_url"))
        monkeypatch.setenv("CONDUIT_CACHE_URL", request.getfixturevalue("redis_url"))
    monkeypatch.setenv("CONDUIT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(settings.jwt_secret_file))
    profile = 'query P { user(username: "ann") { username role } }'
    authors = "query A { articles(first: 5) { nodes { author { role } } } }"  # whose role: not said
    with live_app(settings) as (server, app):
        if engine_name == "postgres":  # LISTENing before the command's NOTIFY
            await until(lambda: app.state.conduit.broker.subscriber_count("response_cache_purged") == 1, "listens")
        user = _live_get(
            server, REGISTER, {"input": {"username": "ann", "email": "ann@x.io", "password": "password123"}}
        )
        token = user.json()["data"]["register"]["token"]
        create = 'mutation { createArticle(input: {title: "Mine", description: "d", body: "b"}) { slug } }'
        _live_get(server, create, token=token)
        for page in (profile, authors, profile, authors):
            _live_get(server, page)
        assert _live_get(server, authors).headers["x-cache"] == "HIT"

        def role() -> str:
            return str(_live_get(server, profile).json()["data"]["user"]["role"])

        def authors_role() -> str:
            return str(_live_get(server, authors).json()["data"]["articles"]["nodes"][0]["author"]["role"])

        assert await asyncio.to_thread(main, ["user", "set-role", "ann", "MODERATOR"]) == 0
        if engine_name == "sqlite":
            assert role() == authors_role() == "MODERATOR"  # purged before the command returned
        else:
            await until(lambda: role() == authors_role() == "MODERATOR", "the server's store purged")
        assert _live_get(server, profile).headers["x-cache"] == "HIT"
        assert await asyncio.to_thread(main, ["user", "delete", "ann", "--yes"]) == 0
        if engine_name == "sqlite":
            assert _live_get(server, profile).json()["data"]["user"] is None
        else:
            await until(lambda: _live_get(server, profile).json()["data"]["user"] is None, "every entry purged")
