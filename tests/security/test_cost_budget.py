"""The cost budget (graph/admission/budget.py): exhausting it, sharing it between processes, and ``rateLimit``.

Each app here is built from the test's settings with a small budget, on the test's database;
two apps on one database stand for two server processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
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
from tests.conftest import GQL, REGISTER, Response, path_counts, sql_of
from tests.graph.test_subscriptions import ARTICLE_PUBLISHED, Client, ws_url
from tests.live import live_server
from tests.loop_thread import LoopThread
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


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[Any]:
    """An app built from ``settings`` with ``changes`` (one server process, in effect)."""
    app = create_app(settings.model_copy(update=changes))
    try:
        yield app
    finally:
        await app.state.conduit.broker.close()
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


async def test_exhausted_budget_refuses_before_execution(settings: Settings, frozen_now: dt.datetime) -> None:
    async with serving(settings, rate_limit_points=15) as app, client_of(app) as gql:
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
        # nothing ran: the one statement is the refused charge, and no row changed
        assert len(sql) == 1 and sql[0].lstrip().upper().startswith("INSERT INTO COST_BUDGET"), sql
        assert await snapshot(app, budget=True) == before
        # what fits still runs, and reading the budget is free even when it is spent
        cheap = await gql.ok(f"{{ tags {RATE} }}")
        assert (cheap["rateLimit"]["cost"], cheap["rateLimit"]["remaining"]) == (1, 2)
        spent = await rate(gql)
        assert (spent["cost"], spent["used"], spent["remaining"]) == (0, 13, 2)
        assert spent["resetAt"] == extensions["resetAt"]


async def test_exhausted_budget_refuses_mutations_and_writes_nothing(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=3) as app, client_of(app) as gql:
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


async def test_two_processes_share_one_budget(settings: Settings) -> None:
    async with (
        serving(settings, rate_limit_points=20) as one,
        serving(settings, rate_limit_points=20) as two,
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


async def test_anonymous_budget_is_per_client_address(settings: Settings) -> None:
    async with (
        serving(settings, rate_limit_points=6) as app,
        client_of(app, "1.2.3.4") as first,
        client_of(app, "5.6.7.8") as second,
    ):
        await first.ok(PAGE)
        rate_limited(await first(PAGE))
        await second.ok(PAGE)
        async with sa_rows(app) as rows:
            assert {row.bucket: row.used for row in rows} == {"address:1.2.3.4": 6, "address:5.6.7.8": 6}


async def test_signed_in_budget_is_per_viewer(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=6) as app, client_of(app) as gql:
        alice = await register(gql, "alice")
        bob = await register(gql, "bob")
        await gql.ok(PAGE, token=alice)
        rate_limited(await gql(PAGE, token=alice))
        await gql.ok(PAGE, token=bob)  # same address, another viewer
        assert (await rate(gql))["used"] == 2  # the address paid for the two registrations only


async def test_every_operation_costs_at_least_a_point(settings: Settings) -> None:
    async with serving(settings) as app, client_of(app) as gql:
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


async def test_rate_limit_alone_is_free_and_never_refused(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=6) as app, client_of(app) as gql:
        await gql.ok(PAGE)
        rate_limited(await gql(PAGE))
        with sql_of(app) as sql:
            for _ in range(3):
                data = await gql.ok(f"query Budget {{ __typename ... on Query {{ {RATE} }} }}")
        assert (data["rateLimit"]["cost"], data["rateLimit"]["used"], data["rateLimit"]["remaining"]) == (0, 6, 0)
        assert all(statement.lstrip().upper().startswith("SELECT") for statement in sql), sql


async def test_dry_run_prices_without_charging_or_executing(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=100) as app, client_of(app) as gql:
        with sql_of(app) as sql:
            response = await gql(
                f"query($dry: Boolean) {{ {PAGE[1:-1]} ...Budget }} "
                "fragment Budget on Query { rateLimit(dryRun: $dry) { cost used remaining } }",
                {"dry": True},
            )
        assert response.body == {"data": {"rateLimit": {"cost": 6, "used": 0, "remaining": 100}}}
        assert len(sql) == 1 and "article" not in sql[0].lower(), sql  # only the budget was read
        assert (await rate(gql))["used"] == 0
        wet = await gql.ok(f"{{ {PAGE[1:-1]} rateLimit(dryRun: false) {{ cost used }} }}")
        assert wet["articles"] == {"nodes": []}
        assert wet["rateLimit"] == {"cost": 6, "used": 6}


async def test_refused_and_invalid_operations_are_not_charged(settings: Settings) -> None:
    async with serving(settings) as app, client_of(app) as gql:
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


async def test_the_window_resets(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(settings, rate_limit_points=6, rate_limit_window_seconds=60) as app, client_of(app) as gql:
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


async def test_concurrent_charges_never_overspend(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=10) as app, client_of(app) as gql:
        responses = await asyncio.gather(*(gql("{ tags }") for _ in range(25)))
        assert sorted(tuple(r.codes) for r in responses) == [()] * 10 + [("RATE_LIMITED",)] * 15
        assert (await rate(gql))["used"] == 10


async def test_compiled_and_ordinary_paths_charge_alike(settings: Settings) -> None:
    async with (
        serving(settings, planned_execution=True) as compiled,
        serving(settings, planned_execution=False) as ordinary,
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
        # first: 1000 is planned SQL's error too; a dry run runs on graphql-core
        assert counts.planned >= 4 and counts.ordinary >= 1, counts
        async with sa_rows(compiled) as rows:
            assert {row.bucket: row.used for row in rows} == {"address:10.0.0.1": 8, "address:10.0.0.2": 8}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_subscription_is_charged_once_when_it_starts(settings: Settings, protocol: str) -> None:
    with live_server(settings.model_copy(update={"rate_limit_points": 2})) as url:
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


async def test_budget_off(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=0) as app, client_of(app) as gql:
        with sql_of(app) as sql:
            assert await gql.ok(f"{{ tags {RATE} }}") == {"tags": [], "rateLimit": None}
        assert len(sql) == 1  # the tags, no budget
        async with sa_rows(app) as rows:
            assert rows == []


@asynccontextmanager
async def sa_rows(app: Any) -> AsyncIterator[list[Any]]:
    """Every row of ``cost_budget``."""
    async with app.state.conduit.db.engine.connect() as connection:
        yield list(await connection.execute(sa.select(cost_budget_table)))
