"""The compiled executor against the ordinary one: identical responses, errors included.

Two apps serve the same seeded database, one with compiled execution and one without. The
benchmark's operations, the example frontend operations and queries that hypothesis-graphql
generates over the whole schema go to both, anonymously and as a signed-in viewer; every
response must be byte-for-byte the same JSON (only the random ``requestId`` of a masked
error may differ). The compiled app's counters prove the compiled path really ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis_graphql import queries

from auth.passwords import hash_password
from db.engine import Database
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, seed
from graph.app import create_app
from graph.settings import Settings
from tests.conftest import sql_of
from tests.loop_thread import LoopThread

SCHEMA = (Path(__file__).parents[2] / "schema.graphql").read_text()
EXAMPLES = Path(__file__).parents[2] / "examples" / "operations"
ARTICLE_FIELDS = (
    "slug title description createdAt tagList favoritesCount favorited author { username bio image following }"
)
Q1 = (
    "query Q1($first: Int!) { articles(first: $first) { "
    f"edges {{ cursor node {{ {ARTICLE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} totalCount }} }}"
)
Q3 = (
    "query Q3($first: Int!, $tag: String!) { articles(first: $first, tag: $tag) { "
    f"edges {{ cursor node {{ {ARTICLE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} totalCount }} }}"
)
Q2 = (
    "query Q2($slug: String!) { article(slug: $slug) { title body createdAt tagList favoritesCount "
    "author { username image } comments(first: 50) { edges { node { id body createdAt "
    "author { username image } } } } } }"
)


class Pair:
    """The same request to the compiled and the ordinary app; both JSON answers."""

    def __init__(self, compiled: Any, ordinary: Any) -> None:
        self.apps = (compiled, ordinary)
        self.clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") for app in self.apps
        ]
        self.token: str | None = None

    @property
    def stats(self) -> Any:
        return self.apps[0].state.conduit.compiled_stats

    async def both(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables or {}}
        answers = []
        for client in self.clients:
            response = await client.post("/graphql", json=body, headers=headers)
            answers.append((response.status_code, _normalized(response.json())))
        return answers[0], answers[1]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps:
            await app.state.conduit.broker.close()
            await app.state.conduit.db.dispose()


def _normalized(body: Any) -> Any:
    for error in body.get("errors") or ():
        if "requestId" in error.get("extensions", {}):
            error["extensions"]["requestId"] = "<request id>"
    # both apps draw on one budget, so the second answer has spent one operation more
    rate_limit = (body.get("data") or {}).get("rateLimit")
    for key in ("used", "remaining"):
        if isinstance(rate_limit, dict) and key in rate_limit:
            rate_limit[key] = f"<{key}>"
    return body


@pytest.fixture
def pair(database_url: str, tmp_path: Path) -> Iterator[tuple[LoopThread, Pair]]:
    thread = LoopThread()

    async def build() -> Pair:
        db = Database(database_url)
        try:
            await seed(
                db,
                SeedPlan(users=12, articles=40, comments=120, favorites=80, follows=30),
                hash_password(DEMO_PASSWORD),
            )
        finally:
            await db.dispose()

        def app(compiled: bool) -> Any:
            return create_app(
                Settings(
                    env="test",
                    database_url=database_url,
                    jwt_secret="test-secret-" + "x" * 40,
                    jwt_secret_file=tmp_path / "secret",
                    compiled_execution=compiled,
                    rate_limit_points=10**9,  # generated queries must not run out of budget halfway
                )
            )

        pair = Pair(app(True), app(False))
        login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
        response = await pair.clients[1].post(
            "/graphql", json={"query": login, "variables": {"e": DEMO_EMAIL, "p": DEMO_PASSWORD}}
        )
        pair.token = response.json()["data"]["login"]["token"]
        return pair

    built = thread.run(build())
    try:
        yield thread, built
    finally:
        thread.run(built.close())
        thread.close()


def _assert_same(answers: tuple[Any, Any], query: str) -> None:
    compiled, ordinary = answers
    assert json.dumps(compiled, sort_keys=False) == json.dumps(ordinary, sort_keys=False), query


def test_benchmark_and_frontend_operations_compile_and_match(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    slug = thread.run(apps.both("{ articles(first: 1) { edges { node { slug tagList } } } }"))[1][1]["data"]
    node = slug["articles"]["edges"][0]["node"]
    operations: list[tuple[str, dict[str, Any]]] = [
        (Q1, {"first": 20}),
        (Q1, {"first": 3}),
        (Q3, {"first": 20, "tag": node["tagList"][0] if node["tagList"] else "none"}),
        (Q2, {"slug": node["slug"]}),
        ("{ viewer { username email role followersCount articles(first: 2) { totalCount } } }", {}),
        ('{ user(username: "demo") { username email favorites(first: 3) { nodes { title } } } }', {}),
        ("{ tags popularTags(first: 5) { name articlesCount } __typename }", {}),
        ('{ a: article(slug: "nope") { id } b: articles(first: 0) { pageInfo { hasNextPage startCursor } } }', {}),
    ]
    before = apps.stats.compiled
    for query, variables in operations:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    assert apps.stats.compiled - before >= len(operations) * 2 - 2, apps.stats


def test_errors_fall_back_and_match(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    cases: list[tuple[str, dict[str, Any]]] = [
        (Q1, {"first": 1000}),  # BAD_USER_INPUT from the resolver
        (Q1, {"first": "twenty"}),  # variables that do not coerce
        ('{ articles(after: "garbage") { totalCount } }', {}),
        ("{ feed { totalCount } }", {}),  # a permission: not compiled
        ('{ node(id: "QXJ0aWNsZTox") { id ... on Article { title } } }', {}),  # abstract: not compiled
    ]
    before = apps.stats.bailouts
    for query, variables in cases:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    assert apps.stats.bailouts > before


def test_statement_count_is_the_same_on_both_paths(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    counts = []
    for app, client in zip(apps.apps, apps.clients, strict=True):
        with sql_of(app) as seen:
            thread.run(client.post("/graphql", json={"query": Q1, "variables": {"first": 20}}))
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


def test_generated_queries_get_identical_responses(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    before = (apps.stats.compiled, apps.stats.bailouts + apps.stats.not_compilable)

    @hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(query=queries(SCHEMA))
    def check(query: str) -> None:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, None, token)), query)

    check()
    # the comparison proves nothing unless both paths were taken
    assert apps.stats.compiled > before[0], apps.stats
    assert apps.stats.bailouts + apps.stats.not_compilable > before[1], apps.stats
