"""SQLite statements run inline on the event loop, and move to a thread when they cannot finish.

Planned reads and group-committed writes run on the loop's own thread within a time budget
(``db/sqlite_driver.InlineSQLite``). These tests force the other way: a budget of zero (every
statement long enough to be interrupted finishes on a thread) and a write lock held by another
connection (the write waits on a thread, and the loop keeps serving). SQLite only: the
PostgreSQL driver has no inline path.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest

from graph.app import create_app
from graph.settings import Settings
from tests.conftest import GQL, User, create_article
from tests.waiting import until

HOME = (
    "query Home($tag: String) { articles(first: 20, tag: $tag) { edges { cursor node { slug title tagList favorited "
    "favoritesCount author { username following } } } pageInfo { hasNextPage endCursor } totalCount } }"
)
PAGE = (
    "query Page($slug: String!) { article(slug: $slug) { title body tagList author { username } "
    "comments(first: 50) { edges { node { id body author { username } } } totalCount } } }"
)
ADD_COMMENT = "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id body author { username } } }"


@pytest.fixture
def engine_name() -> str:
    return "sqlite"


async def _articles(gql: GQL, alice: User) -> list[str]:
    slugs = []
    for i in range(25):
        article = await create_article(gql, alice, f"Article {i}", tagList=["inline", f"t{i % 3}"])
        slugs.append(article["slug"])
    return slugs


async def test_statements_over_the_budget_finish_on_a_thread_with_the_same_answers(
    settings: Settings, gql: GQL, alice: User
) -> None:
    slugs = await _articles(gql, alice)
    await gql.ok(ADD_COMMENT, {"s": slugs[3], "b": "first"}, alice.token)
    slow = create_app(settings)
    slow.state.conduit.db.inline_budget_seconds = 0.0  # interrupt anything that runs long enough to check
    try:
        transport = httpx.ASGITransport(app=slow, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            offloaded = GQL(client)
            for query, variables in ((HOME, {}), (HOME, {"tag": "t1"}), (PAGE, {"slug": slugs[3]})):
                for token in (None, alice.token):
                    inline = await gql(query, variables, token)
                    threaded = await offloaded(query, variables, token)
                    assert not inline.errors, inline.body
                    assert threaded.body == inline.body
            added = await offloaded.ok(ADD_COMMENT, {"s": slugs[3], "b": "second"}, alice.token)
            assert added["addComment"]["body"] == "second"
        assert slow.state.conduit.db.offloads > 0
        comments = (await gql.ok(PAGE, {"slug": slugs[3]}))["article"]["comments"]
        assert [edge["node"]["body"] for edge in comments["edges"]] == ["first", "second"]
        assert comments["totalCount"] == 2
    finally:
        await slow.state.conduit.broker.close()
        await slow.state.conduit.db.dispose()


async def test_a_write_lock_held_elsewhere_is_waited_for_on_a_thread(
    app: Any, settings: Settings, client: httpx.AsyncClient, gql: GQL, alice: User
) -> None:
    slugs = await _articles(gql, alice)
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        offloads = app.state.conduit.db.offloads  # the setup's own, if any, do not count
        other.execute("BEGIN IMMEDIATE")  # another process's writer, as far as SQLite can tell
        adding = asyncio.create_task(gql(ADD_COMMENT, {"s": slugs[0], "b": "patient"}, alice.token))
        # the inline attempt met the lock and gave the write to a thread
        await until(lambda: app.state.conduit.db.offloads > offloads, "the write to move to a thread")
        assert not adding.done()  # waiting for the lock, on that thread
        started = asyncio.get_running_loop().time()
        health = await client.get("/healthz")
        assert health.status_code == 200
        # the event loop was not held: inline, it would wait out the 5 s busy timeout
        assert asyncio.get_running_loop().time() - started < 1
        other.execute("COMMIT")
        response = await asyncio.wait_for(adding, 5)
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    assert not response.errors, response.body
    assert response.data["addComment"]["body"] == "patient"
    assert app.state.conduit.db.offloads > offloads
    page = await gql.ok(PAGE, {"slug": slugs[0]})
    assert [edge["node"]["body"] for edge in page["article"]["comments"]["edges"]] == ["patient"]
