"""The cost budget (graph/admission/budget.py): exhausting it, sharing it between processes, and ``rateLimit``.

Each app here is built from the test's settings with a small budget, on the test's database;
two apps on one database stand for two server processes. Tests taking ``budget_settings`` run
once per store (``[database]``: the ``cost_budget`` table; ``[redis]``: a real ``redis-server``,
``CONDUIT_CACHE_URL``), on each engine, and must read identically through the API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
import websockets
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from auth.passwords import hash_password
from db import budget as budget_store
from db.engine import Database
from db.models import article_table, cost_budget_table
from db.seed import SeedPlan, seed
from graph.app import create_app
from graph.scalars import parse_datetime
from graph.settings import Settings
from tests.conftest import GQL, REGISTER, Response, path_counts, sql_of, with_redis
from tests.graph.test_subscriptions import ARTICLE_PUBLISHED, Client, ws_url
from tests.live import live_server
from tests.loop_thread import LoopThread
from tests.redis import RedisServer, free_port
from tests.security.conftest import snapshot
from tests.security.test_fuzz import SCHEMA

PAGE = "{ articles(first: 100) { nodes { comments(first: 5) { totalCount } } } }"  # 100 + 500 nodes: 6 points
RATE = "rateLimit { cost limit remaining resetAt used }"
CREATE = 'mutation { createArticle(input: {title: "t", description: "d", body: "b"}) { slug } }'


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The budget's clock, pinned to the middle of the current (hourly) window.

    Windows are aligned on the clock, so a test running across hh:00 would see ``used`` and
    ``remaining`` reset halfway. A test that moves the clock itself (``test_the_window_resets``)
    sets ``db.budget.now`` again through the same ``monkeypatch``, which overrides this.
    """
    now = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
    monkeypatch.setattr(budget_store, "now", lambda: now)
    return now


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    """Where the budget is kept in this run of the test."""
    return str(request.param)


@pytest.fixture
def budget_settings(settings: Settings, store: str, request: pytest.FixtureRequest) -> Settings:
    """The test's settings with the budget kept in ``store`` (Redis: the session's server, emptied)."""
    if store == "redis":
        return with_redis(settings, request.getfixturevalue("redis_url"))
    return settings


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[Any]:
    """An app built from ``settings`` with ``changes`` (one server process, in effect)."""
    app = create_app(settings.model_copy(update=changes))
    try:
        yield app
    finally:
        await app.state.conduit.broker.close()
        if app.state.conduit.redis is not None:
            await app.state.conduit.redis.close()
        await app.state.conduit.db.dispose()


@asynccontextmanager
async def client_of(app: Any, address: str = "127.0.0.1") -> AsyncIterator[GQL]:
    """A client of ``app`` connecting from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GQL(http)


async def rate(gql: GQL, token: str | None = None) -> dict[str, Any]:
    """The budget as a free ``rateLimit``-only query reads it."""
    data = await gql.ok(f"{{ {RATE} }}", token=token)
    return dict(data["rateLimit"])


def rate_limited(response: Response) -> dict[str, Any]:
    """The extensions of the only error, which must be ``RATE_LIMITED``, refused before execution."""
    assert response.codes == ["RATE_LIMITED"], response.body
    assert "data" not in response.body
    extensions: dict[str, Any] = response.errors[0]["extensions"]
    return extensions


async def register(gql: GQL, name: str) -> str:
    variables = {"input": {"username": name, "email": f"{name}@example.com", "password": "password123"}}
    return str((await gql.ok(REGISTER, variables))["register"]["token"])


async def test_exhausted_budget_refuses_before_execution(
    budget_settings: Settings, store: str, frozen_now: dt.datetime
) -> None:
    async with serving(budget_settings, rate_limit_points=15) as app, client_of(app) as gql:
        first = await gql.ok(f"{{ {PAGE[1:-1]} {RATE} }}")
        assert first["rateLimit"]["cost"] == 6
        assert (first["rateLimit"]["used"], first["rateLimit"]["remaining"]) == (6, 9)
        await gql.ok(PAGE)  # 12 used
        before = await snapshot(app, budget=True)
        with sql_of(app) as sql:
            response = await gql(PAGE)
        extensions = rate_limited(response)
        assert (extensions["cost"], extensions["limit"]) == (6, 15)
        reset_at = parse_datetime(extensions["resetAt"])
        now = frozen_now  # the budget's clock, not the wall clock
        assert 0 < extensions["retryAfter"] <= 3600
        assert abs((reset_at - now).total_seconds() - extensions["retryAfter"]) <= 2
        # nothing ran: the one statement is the refused charge (none with the budget in Redis),
        # and no row changed
        if store == "database":
            assert len(sql) == 1 and sql[0].lstrip().upper().startswith("INSERT INTO COST_BUDGET"), sql
        else:
            assert sql == []
        assert await snapshot(app, budget=True) == before
        # what fits still runs, and reading the budget is free even when it is spent
        cheap = await gql.ok(f"{{ tags {RATE} }}")
        assert (cheap["rateLimit"]["cost"], cheap["rateLimit"]["remaining"]) == (1, 2)
        spent = await rate(gql)
        assert (spent["cost"], spent["used"], spent["remaining"]) == (0, 13, 2)
        assert spent["resetAt"] == extensions["resetAt"]


async def test_exhausted_budget_refuses_mutations_and_writes_nothing(budget_settings: Settings) -> None:
    async with serving(budget_settings, rate_limit_points=3) as app, client_of(app) as gql:
        token = await register(gql, "alice")  # charged to the address, not to alice
        assert (await rate(gql, token))["used"] == 0
        await gql.ok(CREATE, token=token)
        await gql.ok("{ viewer { username } }", token=token)
        await gql.ok(CREATE, token=token)
        before = await snapshot(app, budget=True)
        rate_limited(await gql(CREATE, token=token))
        after = await snapshot(app, budget=True)
        assert after == before
        assert len(after[article_table.name]) == 2


async def test_two_processes_share_one_budget(budget_settings: Settings) -> None:
    async with (
        serving(budget_settings, rate_limit_points=20) as one,
        serving(budget_settings, rate_limit_points=20) as two,
        client_of(one) as gql_one,
        client_of(two) as gql_two,
    ):
        await gql_one.ok(PAGE)
        await gql_one.ok(PAGE)
        assert (await rate(gql_two))["used"] == 12
        await gql_two.ok(PAGE)
        rate_limited(await gql_one(PAGE))
        rate_limited(await gql_two(PAGE))
        assert (await rate(gql_one))["used"] == 18


async def test_anonymous_budget_is_per_client_address(budget_settings: Settings) -> None:
    async with (
        serving(budget_settings, rate_limit_points=6) as app,
        client_of(app, "1.2.3.4") as first,
        client_of(app, "5.6.7.8") as second,
    ):
        await first.ok(PAGE)
        rate_limited(await first(PAGE))
        await second.ok(PAGE)
        assert await spent(app) == {"address:1.2.3.4": 6, "address:5.6.7.8": 6}


async def test_signed_in_budget_is_per_viewer(budget_settings: Settings) -> None:
    async with serving(budget_settings, rate_limit_points=6) as app, client_of(app) as gql:
        alice = await register(gql, "alice")
        bob = await register(gql, "bob")
        await gql.ok(PAGE, token=alice)
        rate_limited(await gql(PAGE, token=alice))
        await gql.ok(PAGE, token=bob)  # same address, another viewer
        assert (await rate(gql))["used"] == 2  # the address paid for the two registrations only


async def test_every_operation_costs_at_least_a_point(budget_settings: Settings) -> None:
    async with serving(budget_settings) as app, client_of(app) as gql:
        await register(gql, "alice")
        await gql.ok("{ __schema { queryType { name } } }")
        data = await gql.ok(f"{{ viewer {{ username }} {RATE} }}")
        assert data["rateLimit"]["cost"] == 1
        assert data["rateLimit"]["used"] == 3  # the registration, the introspection, and this


async def test_a_first_over_the_maximum_is_priced_at_the_maximum(settings: Settings) -> None:
    async with serving(settings) as app, client_of(app) as gql:
        await register(gql, "alice")
        response = await gql(f'{{ user(username: "alice") {{ articles(first: 40000) {{ totalCount }} }} {RATE} }}')
        assert response.codes == ["BAD_USER_INPUT"]
        assert response.data["rateLimit"]["cost"] == 1  # 100 nodes, not 40,000


async def test_rate_limit_alone_is_free_and_never_refused(budget_settings: Settings, store: str) -> None:
    async with serving(budget_settings, rate_limit_points=6) as app, client_of(app) as gql:
        await gql.ok(PAGE)
        rate_limited(await gql(PAGE))
        with sql_of(app) as sql:
            for _ in range(3):
                data = await gql.ok(f"query Budget {{ __typename ... on Query {{ {RATE} }} }}")
        assert (data["rateLimit"]["cost"], data["rateLimit"]["used"], data["rateLimit"]["remaining"]) == (0, 6, 0)
        assert all(statement.lstrip().upper().startswith("SELECT") for statement in sql), sql
        assert len(sql) == (3 if store == "database" else 0), sql  # one read of the budget each


async def test_dry_run_prices_without_charging_or_executing(budget_settings: Settings, store: str) -> None:
    async with serving(budget_settings, rate_limit_points=100) as app, client_of(app) as gql:
        with sql_of(app) as sql:
            response = await gql(
                f"query($dry: Boolean) {{ {PAGE[1:-1]} ...Budget }} "
                "fragment Budget on Query { rateLimit(dryRun: $dry) { cost used remaining } }",
                {"dry": True},
            )
        assert response.body == {"data": {"rateLimit": {"cost": 6, "used": 0, "remaining": 100}}}
        # only the budget was read (in Redis: no statement at all)
        assert len(sql) == (1 if store == "database" else 0) and all("article" not in q.lower() for q in sql), sql
        assert (await rate(gql))["used"] == 0
        wet = await gql.ok(f"{{ {PAGE[1:-1]} rateLimit(dryRun: false) {{ cost used }} }}")
        assert wet["articles"] == {"nodes": []}
        assert wet["rateLimit"] == {"cost": 6, "used": 6}


async def test_refused_and_invalid_operations_are_not_charged(budget_settings: Settings) -> None:
    async with serving(budget_settings) as app, client_of(app) as gql:
        too_deep = "slug"
        for _ in range(5):
            too_deep = f"author {{ articles {{ nodes {{ {too_deep} }} }} }}"
        assert (await gql(f"{{ articles {{ nodes {{ {too_deep} }} }} }}")).codes == ["QUERY_TOO_COMPLEX"]
        assert (
            await gql(
                "{ articles(first: 100) { nodes { comments(first: 100) { nodes { author { articles(first: 100) { totalCount } } } } } } }"
            )
        ).codes == ["QUERY_TOO_COMPLEX"]
        assert (await gql("query($n: Int) { articles(first: $n) { totalCount } }", {"n": "many"})).codes == [
            "BAD_USER_INPUT"
        ]
        assert (await gql("{ nope }")).codes == ["BAD_USER_INPUT"]
        assert (await rate(gql))["used"] == 0


async def test_the_window_resets(budget_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        serving(budget_settings, rate_limit_points=6, rate_limit_window_seconds=60) as app,
        client_of(app) as gql,
    ):
        now = dt.datetime(2026, 11, 22, 12, 0, 30, tzinfo=dt.UTC)
        monkeypatch.setattr(budget_store, "now", lambda: now)
        await gql.ok(PAGE)
        extensions = rate_limited(await gql(PAGE))
        assert extensions["retryAfter"] == 30
        assert extensions["resetAt"] == "2026-11-22T12:01:00.000000+00:00"
        monkeypatch.setattr(budget_store, "now", lambda: now + dt.timedelta(seconds=30))
        data = await gql.ok(f"{{ {PAGE[1:-1]} {RATE} }}")
        assert (data["rateLimit"]["used"], data["rateLimit"]["resetAt"]) == (6, "2026-11-22T12:02:00.000000+00:00")


async def test_past_windows_are_pruned(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_store, "PRUNE_EVERY", 2)
    async with serving(settings, rate_limit_window_seconds=60) as app:
        now = dt.datetime(2026, 11, 22, 12, 0, 30, tzinfo=dt.UTC)
        monkeypatch.setattr(budget_store, "now", lambda: now)
        async with client_of(app, "1.2.3.4") as first, client_of(app, "5.6.7.8") as second:
            await first.ok("{ tags }")
            monkeypatch.setattr(budget_store, "now", lambda: now + dt.timedelta(minutes=5))
            await second.ok("{ tags }")  # the second charge of the process: it prunes
        async with sa_rows(app) as rows:
            assert [(row.bucket, row.window_start.minute) for row in rows] == [("address:5.6.7.8", 5)]


async def test_concurrent_charges_never_overspend(budget_settings: Settings) -> None:
    """25 requests at once against a budget of 10: exactly 10 succeed, in either store."""
    async with serving(budget_settings, rate_limit_points=10) as app, client_of(app) as gql:
        responses = await asyncio.gather(*(gql("{ tags }") for _ in range(25)))
        assert sorted(tuple(r.codes) for r in responses) == [()] * 10 + [("RATE_LIMITED",)] * 15
        assert (await rate(gql))["used"] == 10


async def test_a_lease_counts_every_point_and_saves_statements(settings: Settings) -> None:
    """A budget of 640 points leases 10 beyond each charge that reaches the table: 33 one-point
    queries cost 3 statements, and ``rateLimit.used`` counts each point as if it had its own."""
    async with serving(settings, rate_limit_points=640) as app, client_of(app) as gql:
        with sql_of(app) as seen:
            used = [(await gql.ok(f"{{ tags {RATE} }}"))["rateLimit"]["used"] for _ in range(33)]
        assert used == list(range(1, 34))
        assert len([statement for statement in seen if "cost_budget" in statement]) == 3
        assert await spent(app) == {"address:127.0.0.1": 33}
        assert (await rate(gql))["remaining"] == 640 - 33  # a free read subtracts the unspent lease


async def test_concurrent_charges_from_a_lease_never_overspend(settings: Settings) -> None:
    """150 requests at once against 128 points (leases of 2 more): exactly 128 succeed."""
    async with serving(settings, rate_limit_points=128) as app, client_of(app) as gql:
        responses = await asyncio.gather(*(gql("{ tags }") for _ in range(150)))
        assert sorted(tuple(r.codes) for r in responses) == [()] * 128 + [("RATE_LIMITED",)] * 22
        assert (await rate(gql))["used"] == 128


async def test_two_processes_leasing_one_budget_never_overspend(settings: Settings) -> None:
    """Two processes charging one bucket of 128 points alternately: together they never spend more
    than the budget, and at most one lease (2 points) is left stranded in the process that holds it."""
    async with (
        serving(settings, rate_limit_points=128) as one,
        serving(settings, rate_limit_points=128) as two,
        client_of(one) as gql_one,
        client_of(two) as gql_two,
    ):
        succeeded = 0
        for _ in range(80):
            for gql in (gql_one, gql_two):
                succeeded += not (await gql("{ tags }")).codes
        assert 128 - 2 * 2 <= succeeded <= 128
        async with sa_rows(one) as rows:
            assert [row.used for row in rows] == [128]


async def test_compiled_and_ordinary_paths_charge_alike(budget_settings: Settings) -> None:
    async with (
        serving(budget_settings, planned_execution=True) as compiled,
        serving(budget_settings, planned_execution=False) as ordinary,
    ):
        queries = [
            f"{{ {RATE} }}",
            f"{{ {PAGE[1:-1]} {RATE} }}",
            f"{{ tags {RATE} }}",
            f"{{ articles(first: 1000) {{ totalCount }} {RATE} }}",  # the resolver's error, on both paths
            "{ articles { totalCount } rateLimit(dryRun: true) { cost used } }",
            f"{{ {RATE} }}",
        ]
        async with client_of(compiled, "10.0.0.1") as gql_compiled, client_of(ordinary, "10.0.0.2") as gql_ordinary:
            for query in queries:
                assert (await gql_compiled(query)).body == (await gql_ordinary(query)).body, query
        counts = path_counts(compiled)
        # first: 1000 is planned SQL's error too, and a dry run's reduced document is planned as well
        assert counts.planned == len(queries) and counts.ordinary == 0, counts
        # each app's own bucket: the table also holds the other process's unspent lease
        assert (await spent(compiled))["address:10.0.0.1"] == (await spent(ordinary))["address:10.0.0.2"] == 8


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_subscription_is_charged_once_when_it_starts(budget_settings: Settings, protocol: str) -> None:
    with live_server(budget_settings.model_copy(update={"rate_limit_points": 2})) as url:
        async with (
            websockets.connect(ws_url(url), subprotocols=[websockets.Subprotocol(protocol)]) as ws,
            httpx.AsyncClient() as http,
        ):
            client = Client(ws, protocol)
            assert (await client.init())["type"] == "connection_ack"
            for op_id in ("1", "2", "3"):
                await client.subscribe(ARTICLE_PUBLISHED, {}, op_id)
            message = await client.receive()  # the three start concurrently: any one of them is refused
            assert message["id"] in ("1", "2", "3"), message
            # refused before execution, like an invalid document: an ``error`` message, whose payload
            # is a list of errors (graphql-transport-ws) or one error (legacy graphql-ws)
            assert message["type"] == "error", message
            payload = message["payload"]
            errors = payload if isinstance(payload, list) else [payload]
            assert [error["extensions"]["code"] for error in errors] == ["RATE_LIMITED"]
            response = await http.post(f"{url}/graphql", json={"query": "{ rateLimit { used } }"})
            assert response.json() == {"data": {"rateLimit": {"used": 2}}}


@pytest.mark.slow  # hypothesis: generated documents on both paths
def test_generated_queries_with_rate_limit_match_on_both_paths(settings: Settings) -> None:
    """hypothesis-graphql queries mixing ``rateLimit`` with other fields: planned and ordinary answers are equal.

    Each app is asked from its own address, so each has its own bucket and the budgets move in
    step: a double charge (say, a planned run that bails out and is charged again) would show.
    """
    thread = LoopThread()
    others = ("articles", "tags", "popularTags", "user", "article", "viewer")
    # every document asks for rateLimit (with or without dryRun) beside other generated fields
    documents = st.tuples(queries(SCHEMA, fields=["rateLimit"]), queries(SCHEMA, fields=others)).map(
        lambda pair: "{ " + " ".join(query.strip()[1:-1] for query in pair) + " }"
    )
    seen: list[str] = []

    async def build() -> tuple[list[Any], list[GQL], AsyncExitStack]:
        db = Database(settings.database_url)
        try:
            await seed(db, SeedPlan(users=4, articles=8, comments=16, favorites=8, follows=4), hash_password("x" * 8))
        finally:
            await db.dispose()
        apps = [create_app(settings.model_copy(update={"planned_execution": on})) for on in (True, False)]
        stack = AsyncExitStack()
        clients = [await stack.enter_async_context(client_of(app, f"10.0.0.{i}")) for i, app in enumerate(apps)]
        return apps, clients, stack

    apps, clients, stack = thread.run(build())
    try:

        @hypothesis_settings(max_examples=40, deadline=None, derandomize=True, database=None)
        @given(query=documents)
        def check(query: str) -> None:
            seen.append(query)
            answers = [thread.run(gql(query)).body for gql in clients]
            assert answers[0] == answers[1], query

        check()
    finally:

        async def close() -> None:
            await stack.aclose()
            for app in apps:
                await app.state.conduit.broker.close()
                await app.state.conduit.db.dispose()

        thread.run(close())
        thread.close()
    assert sum("dryRun: true" in query for query in seen) >= 3, seen
    assert path_counts(apps[0]).planned > 0


async def test_budget_off(budget_settings: Settings) -> None:
    async with serving(budget_settings, rate_limit_points=0) as app, client_of(app) as gql:
        with sql_of(app) as sql:
            assert await gql.ok(f"{{ tags {RATE} }}") == {"tags": [], "rateLimit": None}
        assert len(sql) == 1  # the tags, no budget
        assert await spent(app) == {}


@asynccontextmanager
async def sa_rows(app: Any) -> AsyncIterator[list[Any]]:
    """Every row of ``cost_budget``."""
    async with app.state.conduit.db.engine.connect() as connection:
        yield list(await connection.execute(sa.select(cost_budget_table)))


async def spent(app: Any) -> dict[str, int]:
    """Points spent per bucket as ``app``'s store keeps them: every row of ``cost_budget`` less the
    process's unspent lease (``BudgetStore.peek``), or every budget key in Redis (read with a client
    of the test's own)."""
    state = app.state.conduit
    if state.settings.cache_url is None:
        async with sa_rows(app) as rows:
            return {
                row.bucket: row.used - state.budget.unspent(row.bucket, row.window_start.replace(tzinfo=dt.UTC))
                for row in rows
            }
    async with aioredis.Redis.from_url(state.settings.cache_url.get_secret_value()) as redis:
        keys = [key.decode() async for key in redis.scan_iter(match=f"{budget_store.KEY_PREFIX}*")]
        values = await redis.mget(keys) if keys else []
    # conduit:budget:<window start>:<bucket>
    return {key.split(":", 3)[3]: int(value or 0) for key, value in zip(keys, values, strict=True)}


# --- the budget in Redis (CONDUIT_CACHE_URL) -------------------------------------------------


async def test_both_stores_answer_alike(settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One sequence of operations against each store, across a window boundary: identical responses.

    Costs of 1, 6 and 41 points against a budget of 20, refusals included (their ``retryAfter``
    and ``resetAt``), free reads and dry runs. Each app has its own client address, so a
    ``cost_budget`` row could not stand in for Redis or the other way round.
    """
    now = dt.datetime(2026, 11, 22, 12, 0, 40, tzinfo=dt.UTC)
    monkeypatch.setattr(budget_store, "now", lambda: now)
    heavy = "{ articles(first: 40) { nodes { comments(first: 100) { totalCount } } } }"  # 40 + 4000 nodes: 41 points
    operations = [
        f"{{ {RATE} }}",
        f"{{ tags {RATE} }}",
        f"{{ {PAGE[1:-1]} {RATE} }}",
        f"{{ {heavy[1:-1]} rateLimit(dryRun: true) {{ cost used remaining resetAt }} }}",
        heavy,
        PAGE,
        f"{{ {PAGE[1:-1]} {RATE} }}",
        PAGE,  # 19 spent: refused
        f"{{ tags {RATE} }}",  # 20: the last point
        "{ tags }",  # refused
        f"{{ {RATE} }}",
    ]
    changes = {"rate_limit_points": 20, "rate_limit_window_seconds": 60}
    async with (
        serving(settings, **changes) as in_database,
        serving(with_redis(settings, redis_url), **changes) as in_redis,
        client_of(in_database, "10.0.0.1") as gql_database,
        client_of(in_redis, "10.0.0.2") as gql_redis,
    ):
        answers: list[Any] = []
        for _window in range(2):
            for operation in operations:
                database, redis = await gql_database(operation), await gql_redis(operation)
                assert (redis.status, redis.body) == (database.status, database.body), operation
                answers.append(database.body)
            now += dt.timedelta(minutes=1)  # the next window: both budgets whole again
        assert await spent(in_database) == {"address:10.0.0.1": 20}  # one row per window
        assert set((await spent(in_redis)).values()) == {20}
    codes = [error["extensions"]["code"] for body in answers for error in body.get("errors", [])]
    assert codes.count("RATE_LIMITED") == 6, answers  # the 41-point one, the 8th and 10th, in each window
    assert answers[10]["data"]["rateLimit"]["used"] == 20


async def test_a_redis_window_expires_with_its_window(
    settings: Settings, redis_url: str, frozen_now: dt.datetime
) -> None:
    """A bucket's key carries its window's start and is set to expire at the window's end.

    The clock is the budget's (pinned at hh:30:00 of an hour-long window), so the key must live
    1,800 s, less the real milliseconds the test took to ask.
    """
    async with serving(with_redis(settings, redis_url)) as app, client_of(app, "1.2.3.4") as gql:
        await gql.ok(PAGE)
        start = int(frozen_now.replace(minute=0).timestamp())
        key = f"{budget_store.KEY_PREFIX}{start}:address:1.2.3.4"
        async with aioredis.Redis.from_url(redis_url) as redis:
            assert await redis.get(key) == b"6"
            ttl_ms = await redis.pttl(key)
            await gql.ok(PAGE)  # a second charge sets the same expiry, not a fresh window's
            assert await redis.get(key) == b"12"
            second_ttl_ms = await redis.pttl(key)
    assert 1_790_000 < ttl_ms <= 1_800_000, ttl_ms
    assert 1_790_000 < second_ttl_ms <= 1_800_000, second_ttl_ms


def unavailable_count(metrics: str, use: str) -> float:
    """``conduit_redis_unavailable_total{use=...}`` in a ``/metrics`` exposition (0 when absent)."""
    prefix = f'conduit_redis_unavailable_total{{use="{use}"}} '
    values = [float(line.removeprefix(prefix)) for line in metrics.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


async def metrics_of(app: Any) -> str:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/metrics")
        assert response.status_code == 200
        return response.text


def redis_records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "conduit.redis" and getattr(r, "event", None) == event]


async def test_redis_going_away_admits_uncharged_then_charges_again(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped mid-run: every operation is still answered, uncharged (``rateLimit`` null), with
    one WARNING for the outage and a count per operation; once Redis is back, charges resume."""
    caplog.set_level(logging.INFO, logger="conduit.redis")
    server = RedisServer()
    try:
        server.start()
        async with serving(with_redis(settings, server.url(), rate_limit_points=6)) as app, client_of(app) as gql:
            app.state.conduit.redis.pause = 0.0  # try Redis on every request: no waiting out a pause
            assert (await gql.ok(f"{{ tags {RATE} }}"))["rateLimit"]["used"] == 1
            server.stop()
            for _ in range(3):  # more than the 5 points left would allow, had they been charged
                response = await gql(f"{{ {PAGE[1:-1]} {RATE} }}")
                assert (response.status, response.body) == (
                    200,
                    {"data": {"articles": {"nodes": []}, "rateLimit": None}},
                )
            assert (await gql.ok(f"{{ {RATE} }}"))["rateLimit"] is None
            assert unavailable_count(await metrics_of(app), "budget") == 4
            [warning] = redis_records(caplog, "redis_unavailable")
            assert warning.levelno == logging.WARNING and warning.use == "budget"  # type: ignore[attr-defined]
            assert "Redis unavailable" in warning.getMessage()
            server.start()  # the same port, empty
            assert (await gql.ok(f"{{ {PAGE[1:-1]} {RATE} }}"))["rateLimit"]["used"] == 6
            rate_limited(await gql(PAGE))
            assert len(redis_records(caplog, "redis_available")) == 1
            assert len(redis_records(caplog, "redis_unavailable")) == 1
            assert unavailable_count(await metrics_of(app), "budget") == 4
    finally:
        server.destroy()


async def test_after_a_failure_redis_is_left_alone_for_a_pause(settings: Settings) -> None:
    """Once a call failed, requests do not try Redis for ``pause`` seconds (each would wait out its
    timeout on an unreachable host): a Redis back within the pause is not charged yet."""
    server = RedisServer()
    try:
        server.start()
        async with serving(with_redis(settings, server.url())) as app, client_of(app) as gql:
            app.state.conduit.redis.pause = 600.0  # longer than the test, however slow the machine
            assert (await gql.ok(f"{{ tags {RATE} }}"))["rateLimit"]["used"] == 1
            server.stop()
            assert (await gql.ok(f"{{ tags {RATE} }}"))["rateLimit"] is None
            server.start()
            assert (await gql.ok(f"{{ tags {RATE} }}"))["rateLimit"] is None  # not tried
            assert unavailable_count(await metrics_of(app), "budget") == 2
            async with aioredis.Redis.from_url(server.url()) as redis:
                assert await redis.dbsize() == 0  # nothing charged during the pause
    finally:
        server.destroy()


async def test_unreachable_redis_never_fails_a_request(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A URL where nothing listens, from the first request on: answered, uncharged, logged once,
    and the URL's password nowhere in the log."""
    caplog.set_level(logging.INFO, logger="conduit.redis")
    url = f"redis://:not-in-the-log@127.0.0.1:{free_port()}/0"
    async with serving(with_redis(settings, url, rate_limit_points=1)) as app, client_of(app) as gql:
        for _ in range(3):
            assert await gql.ok(f"{{ tags {RATE} }}") == {"tags": [], "rateLimit": None}
        # a dry run still runs nothing but its rateLimit, which cannot be read
        assert await gql.ok("{ tags rateLimit(dryRun: true) { cost } }") == {"rateLimit": None}
        assert unavailable_count(await metrics_of(app), "budget") == 4
        assert len(redis_records(caplog, "redis_unavailable")) == 1
        assert "Redis unavailable" in caplog.text and "not-in-the-log" not in caplog.text
        async with sa_rows(app) as rows:
            assert rows == []  # not moved back onto the database either
