"""Planned SQL against graphql-core: identical responses, errors included.

Two apps serve the same seeded database, one with planned execution and one without. The
benchmark's operations, the example frontend operations and queries that hypothesis-graphql
generates over the whole schema go to both, anonymously and as a signed-in viewer; every
response must be byte-for-byte the same JSON (only the random ``requestId`` of a masked
error may differ). The planned app's counters prove planned SQL really ran.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis_graphql import queries

from auth.passwords import hash_password
from db import budget as budget_store
from db.engine import Database
from db.models import user_table, utcnow
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, seed
from graph.app import create_app
from graph.settings import Settings
from tests.conftest import path_counts, sql_of
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
    """The same request to the planned and the ordinary app; both JSON answers."""

    def __init__(self, planned: Any, ordinary: Any) -> None:
        self.apps = (planned, ordinary)
        self.clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") for app in self.apps
        ]
        self.token: str | None = None

    @property
    def stats(self) -> Any:
        return path_counts(self.apps[0])

    async def both(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        operation_name: str | None = None,
    ) -> tuple[Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name is not None:
            body["operationName"] = operation_name
        answers = []
        planned_before = self.stats.planned
        for client in self.clients:
            response = await client.post("/graphql", json=body, headers=headers)
            answers.append((response.status_code, _normalized(response.json())))
        if self.stats.planned == planned_before:
            # Both answers are graphql-core's. Several errors below the roots come in the order
            # its DataLoader batches happened to resolve, which two runs of one request need not
            # share: compare those as a set. A planned answer is always compared as it is.
            for _status, body_ in answers:
                if len(body_.get("errors") or ()) > 1:
                    body_["errors"].sort(key=lambda error: json.dumps(error, sort_keys=True))
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


async def build_pair(database_url: str, secret_dir: Path, plan: SeedPlan) -> Pair:
    """A planned and an ordinary app over ``database_url`` (migrated, empty), seeded with ``plan``; signed in as the demo user."""
    db = Database(database_url)
    try:
        await seed(db, plan, hash_password(DEMO_PASSWORD))
    finally:
        await db.dispose()

    def app(planned: bool) -> Any:
        return create_app(
            Settings(
                env="test",
                database_url=database_url,
                jwt_secret="test-secret-" + "x" * 40,
                jwt_secret_file=secret_dir / "secret",
                planned_execution=planned,
                rate_limit_points=10**9,  # generated queries must not run out of budget halfway
                response_cache=False,  # both paths must run every query (a hit runs neither)
            )
        )

    pair = Pair(app(True), app(False))
    login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
    response = await pair.clients[1].post(
        "/graphql", json={"query": login, "variables": {"e": DEMO_EMAIL, "p": DEMO_PASSWORD}}
    )
    pair.token = response.json()["data"]["login"]["token"]
    return pair


@pytest.fixture
def pair(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoopThread, Pair]]:
    # the budget's clock stands still in the middle of the current window: an hour rollover
    # between the two apps' answers would change rateLimit's resetAt (used and remaining are
    # masked). The apps run on the LoopThread; the module attribute is seen from every thread.
    now = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
    monkeypatch.setattr(budget_store, "now", lambda: now)
    thread = LoopThread()

    async def build() -> Pair:
        return await build_pair(
            database_url, tmp_path, SeedPlan(users=12, articles=40, comments=120, favorites=80, follows=30)
        )

    built = thread.run(build())
    try:
        yield thread, built
    finally:
        thread.run(built.close())
        thread.close()


def _assert_same(answers: tuple[Any, Any], query: str) -> None:
    planned, ordinary = answers
    assert json.dumps(planned, sort_keys=False) == json.dumps(ordinary, sort_keys=False), query


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
    before = apps.stats.planned
    for query, variables in operations:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    assert apps.stats.planned - before >= len(operations) * 2 - 2, apps.stats


def test_errors_match(pair: tuple[LoopThread, Pair]) -> None:
    """Arguments a resolver refuses: planned SQL reports the resolver's error, located and propagated alike."""
    thread, apps = pair
    cases: list[tuple[str, dict[str, Any]]] = [
        (Q1, {"first": 1000}),  # BAD_USER_INPUT from the resolver
        (Q1, {"first": "twenty"}),  # variables that do not coerce
        ('{ articles(after: "garbage") { totalCount } }', {}),
        ("{ feed { totalCount } }", {}),  # a permission, for the anonymous viewer
        ('{ node(id: "QXJ0aWNsZTox") { id ... on Article { title } } }', {}),
        ('{ viewer { username favorites(after: "garbage") { totalCount } } tags }', {}),  # nested: viewer null
        ('{ user(username: "demo") { articles(first: -1) { totalCount } } }', {}),
        ('{ a: articles(first: 500) { totalCount } b: articles(after: "x") { totalCount } }', {}),  # the first only
        ("{ feed { totalCount } tags(first: -2) }", {}),  # anonymous: feed's refusal alone
        ("{ articles(offset: -1) { totalCount } }", {}),
        ('{ articles(first: 2, offset: 3, after: "x") { totalCount } }', {}),  # offset's refusal before the cursor's
        ("{ feed(offset: -5) { totalCount } }", {}),
        ('{ viewer { id } user(username: "demo") { articles(first: -1) { totalCount } } tags(first: -3) }', {}),
        (  # two errors below the roots: graphql-core's scheduling orders them, so it answers
            '{ x: user(username: "demo") { articles(first: -1) { totalCount } } '
            'y: user(username: "demo") { favorites(after: "zz") { totalCount } } }',
            {},
        ),
    ]
    before = apps.stats.planned
    for query, variables in cases:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    # all but the variables that do not coerce (refused at admission) and the two errors below the roots
    assert apps.stats.planned - before == (len(cases) - 2) * 2, apps.stats


def test_operations_with_nothing_to_read_are_planned_and_match(pair: tuple[LoopThread, Pair]) -> None:
    """``{ __typename }`` (a common liveness probe) and operations whose every field is skipped:
    the planned path answers them too, reading no table."""
    thread, apps = pair
    cases: list[tuple[str, dict[str, Any]]] = [
        ("{ __typename }", {}),
        ("query Ping { t: __typename __typename }", {}),
        ("mutation { __typename }", {}),
        ("query($skip: Boolean!) { tags @skip(if: $skip) __typename @include(if: false) }", {"skip": True}),
        ("query($on: Boolean!) { ... on Query @include(if: $on) { tags } __typename }", {"on": False}),
    ]
    for query, variables in cases:
        for token in (None, apps.token):
            before = apps.stats.planned
            with sql_of(apps.apps[0]) as seen:
                _assert_same(thread.run(apps.both(query, variables, token)), query)
            assert apps.stats.planned == before + 1, (query, apps.stats)
            # the budget's, and the signed-in viewer's check: nothing else is read
            viewer_check = "SELECT user.id, user.username, user.role"
            assert all("cost_budget" in s or s.replace('"', "").startswith(viewer_check) for s in seen), seen


def test_dry_runs_are_planned_and_match(pair: tuple[LoopThread, Pair]) -> None:
    """``rateLimit(dryRun: true)`` prices the operation and runs only its ``rateLimit`` and
    ``__typename`` root fields; planned SQL answers the reduced document, and the same text
    run for real (a variable decides) keeps its own plan."""
    thread, apps = pair
    toggled = "query($dry: Boolean) { tags __typename ...Budget } fragment Budget on Query { rateLimit(dryRun: $dry) { cost limit } }"
    costs = "fragment Costs on RateLimit { cost limit }"
    two = "query A { tags rateLimit(dryRun: true) { cost } } query B { __typename rateLimit(dryRun: true) { limit } }"
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("{ articles(first: 5) { totalCount } rateLimit(dryRun: true) { cost used remaining limit } }", {}, None),
        (toggled, {"dry": False}, None),
        (toggled, {"dry": True}, None),
        (toggled, {"dry": False}, None),
        ("{ ... on Query { rateLimit(dryRun: true) { cost } feed { totalCount } } }", {}, None),
        # the fragments the kept fields spread stay with them
        (f"{{ tags rateLimit(dryRun: true) {{ ...Costs }} }} {costs}", {}, None),
        (
            f"{{ ...Budget }} fragment Budget on Query {{ tags rateLimit(dryRun: true) {{ ...Costs }} }} {costs}",
            {},
            None,
        ),
        (two, {}, "B"),
        (two, {}, "A"),
    ]
    for query, variables, name in cases:
        for token in (None, apps.token):
            before = apps.stats.planned
            planned, ordinary = thread.run(apps.both(query, variables, token, name))
            _assert_same((planned, ordinary), query)
            assert apps.stats.planned == before + 1, (query, apps.stats)
            data = planned[1]["data"]
            assert ("tags" in data) is not variables.get("dry", True), planned  # a dry run runs rateLimit alone
            assert data["rateLimit"] and None not in data["rateLimit"].values(), planned


def test_planned_sends_no_more_statements_than_the_ordinary_path(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    counts = []
    for app, client in zip(apps.apps, apps.clients, strict=True):
        with sql_of(app) as seen:
            thread.run(client.post("/graphql", json={"query": Q1, "variables": {"first": 20}}))
        # the budget's charge is the pipeline's, and leased per process (db/budget.py)
        counts.append(len([s for s in seen if "cost_budget" not in s]))
    # the page and its count; on PostgreSQL planned SQL reads the count with the page (one round trip)
    assert counts == ([2, 2] if apps.apps[0].state.conduit.db.is_sqlite else [1, 2]), counts


@pytest.mark.slow  # hypothesis: 60 generated queries, twice each
def test_generated_queries_get_identical_responses(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    before = apps.stats.planned

    @hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(query=queries(SCHEMA))
    def check(query: str) -> None:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, None, token)), query)

    check()
    # the comparison proves nothing unless the planned path answered (its share: test_planned_coverage)
    assert apps.stats.planned > before, apps.stats


@pytest.mark.slow  # hypothesis: 60 generated queries, twice each
def test_nothing_viewer_dependent_is_marked_public(pair: tuple[LoopThread, Pair]) -> None:
    """Where an answer differs between an anonymous request and a signed-in admin, it is never ``public``."""
    thread, apps = pair
    client = apps.clients[0]
    compared = [0]

    async def answer(query: str, token: str | None) -> tuple[Any, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.post("/graphql", json={"query": query}, headers=headers)
        return response.json(), response.headers["cache-control"]

    @hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(query=queries(SCHEMA))
    def check(query: str) -> None:
        (anonymous, anonymous_policy), (signed_in, signed_in_policy) = (
            thread.run(answer(query, None)),
            thread.run(answer(query, apps.token)),
        )
        assert anonymous_policy == signed_in_policy, query  # the policy is the document's
        if anonymous != signed_in:
            compared[0] += 1
            assert not anonymous_policy.startswith("public"), query

    check()
    assert compared[0] > 0  # some generated queries did depend on the viewer


def test_planned_shapes_match(pair: tuple[LoopThread, Pair]) -> None:
    """Selections, arguments and viewers the SQL planner covers, and some it hands back."""
    thread, apps = pair
    listing = thread.run(apps.both("{ articles(first: 40) { edges { cursor node { slug author { username } } } } }"))
    edges = listing[1][1]["data"]["articles"]["edges"]
    slugs = [edge["node"]["slug"] for edge in edges]
    # the viewer favorites one article and follows its author, so both flags are true somewhere
    favorite = "mutation($s: String!) { favoriteArticle(slug: $s) { favorited } }"
    follow = "mutation($u: String!) { followUser(username: $u) { following } }"
    thread.run(apps.both(favorite, {"s": slugs[1]}, apps.token))
    thread.run(apps.both(follow, {"u": edges[2]["node"]["author"]["username"]}, apps.token))
    commented = thread.run(
        apps.both("{ articles(first: 40) { edges { node { slug comments(first: 0) { totalCount } } } } }")
    )
    by_comments = sorted(
        commented[1][1]["data"]["articles"]["edges"], key=lambda e: -e["node"]["comments"]["totalCount"]
    )
    busy = by_comments[0]["node"]["slug"]
    everything = (
        "__typename id slug title description body createdAt updatedAt tagList favoritesCount favorited "
        "author { __typename id username bio image following createdAt }"
    )
    page = "pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }"
    planned: list[tuple[str, dict[str, Any]]] = [
        (
            f"{{ articles {{ __typename edges {{ __typename cursor node {{ {everything} }} }} {page} totalCount }} }}",
            {},
        ),
        (
            "query($a: String) { articles(first: 5, after: $a) { edges { cursor node { slug } } totalCount } }",
            {"a": edges[4]["cursor"]},
        ),
        (
            '{ x: articles(first: 3, tag: "programming") { totalCount n: edges { node { t: title tagList } } } '
            "y: articles(first: 0) { totalCount pageInfo { hasNextPage endCursor } } __typename }",
            {},
        ),
        (
            "query($u: String!) { articles(author: $u, first: 2) { totalCount edges { node { author { username } } } } }",
            {"u": edges[2]["node"]["author"]["username"]},
        ),
        (
            'query($u: String!) { articles(author: $u, tag: "programming") { totalCount edges { node { slug } } } }',
            {"u": edges[2]["node"]["author"]["username"]},
        ),
        ('{ articles(tag: "no-such-tag") { totalCount edges { cursor } pageInfo { startCursor endCursor } } }', {}),
        (  # page-number paging (RealWorld's limit and offset), the feed's too
            f"query($o: Int) {{ articles(first: 3, offset: $o) {{ edges {{ cursor node {{ slug }} }} {page} totalCount }} "
            "feed(first: 2, offset: 1) { totalCount nodes { slug } } }",
            {"o": 4},
        ),
        ('{ articles(tag: "programming", first: 2, offset: 1) { totalCount nodes { slug } } }', {}),
        ("{ articles(first: 2, offset: 0) { pageInfo { hasPreviousPage } } }", {}),
        (
            "fragment A on Article { slug author { username } } "
            "query { articles(first: 4) { edges { node { ...A ... on Article { title author { bio } } } } } }",
            {},
        ),
        (
            f"query($s: String!) {{ article(slug: $s) {{ {everything} comments {{ totalCount {page} "
            "edges { cursor node { __typename id body createdAt updatedAt author { id username image createdAt } } } } "
            "c2: comments(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }",
            {"s": busy},
        ),
        ('{ article(slug: "no-such-article") { title comments { totalCount } } }', {}),
        (Q2, {"slug": slugs[1]}),
    ]
    before = apps.stats.planned
    for query, variables in planned:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    assert apps.stats.planned - before == len(planned) * 2, apps.stats
    # a comments cursor, then arguments and selections outside the plan: answered the other ways
    first_comments = thread.run(
        apps.both(
            "query($s: String!) { article(slug: $s) { comments(first: 2) { pageInfo { endCursor } } } }", {"s": busy}
        )
    )
    after = first_comments[1][1]["data"]["article"]["comments"]["pageInfo"]["endCursor"]
    others: list[tuple[str, dict[str, Any]]] = [
        (
            "query($s: String!, $a: String) { article(slug: $s) { comments(first: 3, after: $a) { "
            "edges { cursor node { id } } pageInfo { hasPreviousPage hasNextPage } } } }",
            {"s": busy, "a": after},
        ),
        ("{ articles(orderBy: {field: FAVORITES_COUNT}) { edges { node { slug favoritesCount } } } }", {}),
        ('{ articles(search: "the", first: 3) { totalCount edges { node { slug } } } }', {}),
        ('{ articles(search: "the", first: 3, offset: 2) { totalCount edges { node { slug } } } }', {}),
        ("{ articles(first: 101) { totalCount } }", {}),
        ('{ articles(after: "bm9wZQ==") { totalCount } }', {}),
        ("{ articles(first: 2) { nodes { slug } } }", {}),
        ("{ articles(first: 2) { edges { node { comments { totalCount } author { email } } } } }", {}),
    ]
    for query, variables in others:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    # connections below lists, their parents repeated (an author of several articles), and
    # cursors on connections PostgreSQL reads inside their parent's statement, at two depths
    nested: list[tuple[str, dict[str, Any]]] = [
        (
            "{ articles(first: 10) { edges { node { slug author { username articles(first: 2) { totalCount "
            "edges { cursor node { slug comments(first: 2) { pageInfo { hasNextPage } nodes { body } } } } } } } } } }",
            {},
        ),
        (
            "query($s: String!, $a: String) { article(slug: $s) { comments(first: 3, after: $a) { "
            "edges { cursor node { id author { favorites(first: 1) { nodes { slug } } } } } "
            "pageInfo { hasPreviousPage hasNextPage } } } }",
            {"s": busy, "a": after},
        ),
        (
            "query($a: String) { articles(first: 3) { nodes { slug author { articles(first: 1) { nodes { "
            "comments(first: 2, after: $a) { edges { cursor } } } } } } } }",
            {"a": after},
        ),
    ]
    before = apps.stats.planned
    for query, variables in nested:
        for token in (None, apps.token):
            _assert_same(thread.run(apps.both(query, variables, token)), query)
    assert apps.stats.planned - before == len(nested) * 2, apps.stats


USER_FIELDS = (
    "__typename id username email emailVerified role "
    "suspension { __typename reason until createdAt by { __typename username email suspension { reason } } }"
)


async def _account_states(apps: Pair) -> list[str]:
    """Suspend and verify some seeded users (directly in the database); their usernames, newest first."""
    db = apps.apps[0].state.conduit.db
    now = utcnow()
    async with db.engine.begin() as connection:
        rows = (
            await connection.execute(
                sa.select(user_table.c.id, user_table.c.username).order_by(
                    user_table.c.created_at.desc(), user_table.c.id.desc()
                )
            )
        ).all()
        ids = {username: pk for pk, username in rows}
        names = [username for _pk, username in rows if username != "demo"]
        states = {  # forever, by demo; until tomorrow, by a user gone; expired an hour ago
            names[0]: {"suspended_until": None, "suspended_by_id": ids["demo"]},
            names[1]: {"suspended_until": now + dt.timedelta(days=1), "suspended_by_id": None},
            names[2]: {"suspended_until": now - dt.timedelta(hours=1), "suspended_by_id": ids[names[0]]},
            names[3]: {"suspended_until": now + dt.timedelta(days=1), "suspended_by_id": ids[names[1]]},
        }
        for username, values in states.items():
            await connection.execute(
                sa.update(user_table)
                .where(user_table.c.username == username)
                .values(suspended_at=now - dt.timedelta(days=2), suspension_reason=f"spam by {username}", **values)
            )
        await connection.execute(
            sa.update(user_table).where(user_table.c.username.in_([names[3], "demo"])).values(email_verified=True)
        )
    return [username for _pk, username in rows]


async def _set_role(apps: Pair, username: str, role: str) -> None:
    async with apps.apps[0].state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.update(user_table).where(user_table.c.username == username).values(role=role))


def test_users_and_account_fields_match(pair: tuple[LoopThread, Pair]) -> None:
    """``users``, ``emailVerified`` and ``suspension`` (with its outer joins) for every kind of viewer."""
    thread, apps = pair
    usernames = thread.run(_account_states(apps))
    page = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
    listing = f"{{ users {{ __typename totalCount edges {{ __typename cursor node {{ {USER_FIELDS} }} }} {page} }} }}"
    first = thread.run(apps.both("{ users(first: 4) { edges { cursor } } }", None, apps.token))
    operations: list[tuple[str, dict[str, Any]]] = [
        (listing, {}),
        ("query($a: String) { users(first: 3, after: $a) { totalCount nodes { username } } }", {"a": None}),
        ('{ users(search: "DEM") { totalCount nodes { username } } }', {}),
        ('{ users(search: "%") { totalCount } a: users(search: "_") { totalCount } }', {}),
        ("{ users(role: ADMIN) { totalCount nodes { username role } } }", {}),
        (f"{{ users(suspended: true) {{ totalCount nodes {{ {USER_FIELDS} }} }} }}", {}),
        ("{ users(suspended: false, first: 2) { totalCount nodes { username suspension { reason } } } }", {}),
        ("{ users(first: 101) { totalCount } }", {}),
        ('{ users(after: "garbage") { totalCount } }', {}),
        ("{ users { totalCount } tags }", {}),
        *[(f"query($u: String!) {{ user(username: $u) {{ {USER_FIELDS} }} }}", {"u": name}) for name in usernames[:5]],
        (f"{{ viewer {{ {USER_FIELDS} }} }}", {}),
        (
            f"{{ articles(first: 40) {{ edges {{ node {{ slug author {{ {USER_FIELDS} }} "
            f"comments(first: 3) {{ nodes {{ author {{ username suspension {{ reason by {{ username }} }} }} }} }} }} }} }} }}",
            {},
        ),
    ]
    if first[1][1].get("data"):
        cursor = first[1][1]["data"]["users"]["edges"][1]["cursor"]
        operations.append(("query($a: String) { users(first: 3, after: $a) { nodes { username } } }", {"a": cursor}))
    before = apps.stats.planned
    for role in ("USER", "MODERATOR", "ADMIN"):
        thread.run(_set_role(apps, "demo", role))
        for query, variables in operations:
            for token in (None, apps.token):
                _assert_same(thread.run(apps.both(query, variables, token)), f"{role}: {query}")
    # every operation went down the planned path, anonymous and signed in, for each role
    assert apps.stats.planned - before == len(operations) * 2 * 3, apps.stats
    moderator = thread.run(apps.both(f"{{ users(suspended: true) {{ nodes {{ {USER_FIELDS} }} }} }}", None, apps.token))
    suspended = moderator[0][1]["data"]["users"]["nodes"]
    # three suspensions still running (the expired one is none)
    assert len(suspended) == 3 and all(node["suspension"]["reason"].startswith("spam") for node in suspended)
    names = [name for name in usernames if name != "demo"]
    suspenders = {node["username"]: (node["suspension"]["by"] or {}).get("username") for node in suspended}
    assert suspenders == {names[0]: "demo", names[1]: None, names[3]: names[1]}
    assert [node["username"] for node in suspended if node["emailVerified"]] == [names[3]]  # an admin sees it


ADD_COMMENT = (
    "mutation($s: String!, $b: String!) { __typename addComment(slug: $s, body: $b) { __typename id body "
    "createdAt updatedAt c: createdAt author { __typename id username bio image createdAt } } }"
)
COMMENT_BY_ID = (
    "query($id: ID!) { node(id: $id) { ... on Comment { __typename id body createdAt updatedAt c: createdAt "
    "author { __typename id username bio image createdAt } } } }"
)


def test_planned_add_comment_writes_once_and_answers_as_the_ordinary_executor(pair: tuple[LoopThread, Pair]) -> None:
    thread, apps = pair
    listing = thread.run(apps.both("{ articles(first: 1) { edges { node { slug comments { totalCount } } } } }"))
    node = listing[1][1]["data"]["articles"]["edges"][0]["node"]
    slug, comments_before = node["slug"], node["comments"]["totalCount"]
    count = "query($s: String!) { article(slug: $s) { comments { totalCount } } }"
    before = apps.stats.planned
    answers = thread.run(apps.both(ADD_COMMENT, {"s": slug, "b": "planned or not"}, apps.token))
    assert apps.stats.planned == before + 1, apps.stats
    # each app added its own comment: same shape, and each reads back as the ordinary executor shows it
    for status, body in answers:
        assert status == 200 and "errors" not in body, body
        added = body["data"]["addComment"]
        assert body["data"]["__typename"] == "Mutation" and added["body"] == "planned or not"
        read = thread.run(apps.both(COMMENT_BY_ID, {"id": added["id"]}))[1][1]
        assert read["data"]["node"] == added
    total = thread.run(apps.both(count, {"s": slug}))[1][1]["data"]["article"]["comments"]["totalCount"]
    assert total == comments_before + 2
    # refused before anything is written, on both paths alike
    fallbacks = apps.stats.fallbacks
    refused = [
        ({"s": slug, "b": "anonymous"}, None),
        ({"s": slug, "b": "   "}, apps.token),
        ({"s": slug, "b": "x" * 100_000}, apps.token),
        ({"s": "no-such-article", "b": "lost"}, apps.token),
    ]
    for variables, token in refused:
        _assert_same(thread.run(apps.both(ADD_COMMENT, variables, token)), str(variables)[:80])
    assert apps.stats.fallbacks - fallbacks == len(refused)
    assert thread.run(apps.both(count, {"s": slug}))[1][1]["data"]["article"]["comments"]["totalCount"] == total
    # a selection the planner does not cover runs the ordinary way (once)
    other = 'mutation($s: String!) { addComment(slug: $s, body: "x") { article { slug } } }'
    planned, ordinary = thread.run(apps.both(other, {"s": slug}, apps.token))
    assert planned == ordinary
    assert thread.run(apps.both(count, {"s": slug}))[1][1]["data"]["article"]["comments"]["totalCount"] == total + 2


ARTICLE_PAYLOAD = (
    "__typename id slug title favorited favoritesCount tagList author { username following followersCount "
    "articles(first: 2) { totalCount edges { cursor node { slug } } } } comments(first: 3) { totalCount "
    "nodes { body author { username } article { slug } } }"
)
USER_PAYLOAD = (
    "id username email bio following followersCount followingCount role "
    "favorites(first: 2) { totalCount nodes { slug favorited } }"
)


def test_mutation_payloads_are_planned_and_match(pair: tuple[LoopThread, Pair]) -> None:
    """graphql-core runs the mutation; planned SQL reads its payload, as the resolvers would answer it."""
    thread, apps = pair
    own = thread.run(apps.both("{ viewer { username articles(first: 1) { nodes { slug title } } } }", None, apps.token))
    viewer = own[1][1]["data"]["viewer"]
    mine = viewer["articles"]["nodes"][0]
    other = thread.run(apps.both("{ articles(first: 1) { nodes { slug author { username } } } }"))[1][1]
    theirs = other["data"]["articles"]["nodes"][0]
    idempotent: list[tuple[str, dict[str, Any]]] = [  # the same answer for the second app as for the first
        (f"mutation($s: String!) {{ favoriteArticle(slug: $s) {{ {ARTICLE_PAYLOAD} }} }}", {"s": theirs["slug"]}),
        (f"mutation($s: String!) {{ unfavoriteArticle(slug: $s) {{ {ARTICLE_PAYLOAD} }} }}", {"s": theirs["slug"]}),
        (
            f"mutation($s: String!, $t: String!) {{ updateArticle(slug: $s, input: {{title: $t}}) {{ {ARTICLE_PAYLOAD} }} }}",
            {"s": mine["slug"], "t": mine["title"]},
        ),
        (
            f"mutation($u: String!) {{ followUser(username: $u) {{ {USER_PAYLOAD} }} }}",
            {"u": theirs["author"]["username"]},
        ),
        ('mutation { updateViewer(input: {bio: "the same bio"}) { ' + USER_PAYLOAD + " } }", {}),
        (  # an argument a resolver below refuses: the error where graphql-core puts it, data null
            "mutation($s: String!) { favoriteArticle(slug: $s) { slug comments(first: 500) { totalCount } } }",
            {"s": theirs["slug"]},
        ),
    ]
    planned_app = apps.apps[0]
    for query, variables in idempotent:
        with sql_of(planned_app) as seen:
            answers = thread.run(apps.both(query, variables, apps.token))
        _assert_same(answers, query)
        # the payload came from one planned statement (labelled columns), not the DataLoaders
        assert any(" AS c0" in statement for statement in seen), (query, seen)
    login = (
        "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { user { "
        + USER_PAYLOAD
        + " } } }"
    )
    answers = thread.run(apps.both(login, {"e": DEMO_EMAIL, "p": DEMO_PASSWORD}))
    _assert_same(answers, login)
