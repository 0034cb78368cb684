"""A known viewer is a guess, confirmed before any answer: suspensions, roles and deletions still count at once.

A signed-in request of a user the server has seen runs as the viewer it saw
(``auth.backend.KnownViewers``); a planned query checks that guess in its first statement, and
every other answer (an empty page, graphql-core's, a refusal, a mutation, a kept response)
reads the user's row first. These tests change the user's row outside the API, after the
server has seen them, and look at the next answer, through the HTTP endpoint, on both engines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from auth import backend
from auth.backend import SUSPENDED
from db.models import user_table
from db.users import suspend_user
from graph.app import create_app
from graph.settings import Settings
from tests.conftest import GQL, User, Users, create_article, path_counts, set_role, sql_of

PAGE = "{ articles(first: 5) { nodes { slug author { username } } } }"
USERS = "{ users(first: 5) { nodes { username } } }"
COMMENTS = "query($s: String!) { article(slug: $s) { comments(first: 10) { nodes { body } } favoritesCount } }"


async def _suspend(app: Any, username: str) -> None:
    """Suspend ``username`` the way ``conduit user suspend`` does, outside the API."""
    db = app.state.conduit.db
    session = db.session()
    try:
        async with db.transaction(session):
            found = await session.execute(sa.select(user_table.c.id).where(user_table.c.username == username))
            await suspend_user(session=session, user_id=found.scalar_one(), reason="spam", until=None, by_id=None)
    finally:
        await session.close()


async def _delete(app: Any, username: str) -> None:
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.delete(user_table).where(user_table.c.username == username))


def _refused(response: Any, message: str) -> None:
    assert response.status == 401, response.body
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.errors[0]["message"] == message
    assert "data" not in response.body


# each: (query, whether it takes the article's slug as $s), reaching a different place where the guess is checked
PATHS = {
    "planned, the page's statement": (PAGE, False),
    "planned, a page with its total": ("{ articles(first: 5) { totalCount nodes { slug } } }", False),
    "planned, a lookup": ("query($s: String!) { article(slug: $s) { title } }", True),
    "planned, an empty page": ('{ articles(first: 5, tag: "none-such") { nodes { slug } } }', False),
    "planned, no statement that carries the check": ("{ tags }", False),
    "planned, nothing to read": ("{ __typename }", False),
    "planned, a dry run": ("{ tags rateLimit(dryRun: true) { cost } }", False),
    "planned, a mutation with nothing to write": ("mutation { __typename }", False),
    "planned, an argument error": ("{ articles(first: -1) { nodes { slug } } }", False),
    "graphql-core, after the check's statement ran": (
        "{ articles(first: 5) { nodes { comments(first: -1) { nodes { body } } } } }",
        False,
    ),
    "graphql-core": ("{ __schema { queryType { name } } }", False),
    "refused by validation": ("{ noSuchField }", False),
    "planned mutation": ('mutation($s: String!) { addComment(slug: $s, body: "hi") { id } }', True),
    "graphql-core mutation": ("mutation($s: String!) { favoriteArticle(slug: $s) { slug } }", True),
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_known_viewer_suspended_outside_the_api_is_refused(
    app: Any, gql: GQL, alice: User, bob: User, path: str
) -> None:
    article = await create_article(gql, bob)
    await gql.ok(PAGE, token=alice.token)  # the server has seen alice: her next request runs on the guess
    await _suspend(app, "alice")
    query, needs_slug = PATHS[path]
    response = await gql(query, {"s": article["slug"]} if needs_slug else None, alice.token)
    _refused(response, SUSPENDED)
    # nothing was written for her
    after = await gql.ok(COMMENTS, {"s": article["slug"]})
    assert after["article"] == {"comments": {"nodes": []}, "favoritesCount": 0}
    # and it stays refused
    _refused(await gql(PAGE, token=alice.token), SUSPENDED)


async def test_a_known_viewer_deleted_outside_the_api_is_refused(app: Any, gql: GQL, alice: User, bob: User) -> None:
    await create_article(gql, bob)
    await gql.ok(PAGE, token=alice.token)
    await _delete(app, "alice")
    _refused(await gql(PAGE, token=alice.token), "the access token's user no longer exists")


async def test_a_known_viewers_new_role_counts_at_once_on_the_planned_path(
    app: Any, gql: GQL, alice: User, bob: User
) -> None:
    await create_article(gql, bob)
    assert (await gql(USERS, token=alice.token)).codes == ["FORBIDDEN"]  # seen as a USER
    await set_role(app, "alice", "MODERATOR")
    before = path_counts(app)
    listed = await gql.ok(USERS, token=alice.token)
    assert {user["username"] for user in listed["users"]["nodes"]} == {"alice", "bob"}
    # ran as a USER, checked, then answered again as a MODERATOR: by planned SQL both times
    assert path_counts(app).planned == before.planned + 1 and path_counts(app).ordinary == before.ordinary
    await set_role(app, "alice", "USER")
    assert (await gql(USERS, token=alice.token)).codes == ["FORBIDDEN"]
    # an admin sees other users' email: the guess (USER) is corrected before the row is shaped
    await set_role(app, "alice", "ADMIN")
    seen = await gql.ok('{ user(username: "bob") { email } viewer { role } }', token=alice.token)
    assert seen == {"user": {"email": bob.email}, "viewer": {"role": "ADMIN"}}


async def test_a_known_viewers_new_username_is_answered(gql: GQL, alice: User) -> None:
    await gql.ok("{ viewer { username } }", token=alice.token)
    renamed = await gql.ok('mutation { updateViewer(input: {username: "alicia"}) { username } }', token=alice.token)
    assert renamed == {"updateViewer": {"username": "alicia"}}
    assert await gql.ok("{ viewer { username } }", token=alice.token) == {"viewer": {"username": "alicia"}}


async def test_a_confirmed_guess_costs_no_statement_and_a_wrong_one_one(app: Any, gql: GQL, alice: User) -> None:
    """The guess is checked inside the page's statement; a wrong one costs one read of the user's row."""
    await create_article(gql, alice)
    await gql.ok(PAGE)
    await gql.ok(PAGE, token=alice.token)  # plans warm, alice seen
    counts = []
    for token in (None, alice.token):
        with sql_of(app) as seen:
            await gql.ok(PAGE, token=token)
        counts.append(len([sql for sql in seen if "cost_budget" not in sql]))
    assert counts[0] == counts[1], counts
    await set_role(app, "alice", "MODERATOR")
    with sql_of(app) as seen:
        await gql.ok(PAGE, token=alice.token)
    # the page with its check, the user's row, then the page again as the moderator she is now
    assert len([sql for sql in seen if "cost_budget" not in sql]) == 2 * counts[0] + 1


@pytest.fixture
async def cached_app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings.model_copy(update={"response_cache": True}))
    yield application
    await application.state.conduit.broker.close()
    await application.state.conduit.db.dispose()


async def test_a_kept_answer_is_not_served_to_a_known_viewer_suspended_since(cached_app: Any) -> None:
    transport = httpx.ASGITransport(app=cached_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        gql = GQL(http)
        alice = await Users(gql).register("alice")
        await create_article(gql, alice)
        await gql.ok(PAGE, token=alice.token)  # kept: a public answer
        hit = await gql(PAGE, token=alice.token)
        assert hit.headers.get("x-cache") == "HIT"  # a public answer, kept: served to her too
        await _suspend(cached_app, "alice")
        _refused(await gql(PAGE, token=alice.token), SUSPENDED)
        assert (await gql(PAGE)).headers.get("x-cache") == "HIT"  # still kept for everyone else


@pytest.mark.parametrize("query", [PAGE, 'mutation($s: String!) { addComment(slug: $s, body: "hi") { id } }'])
async def test_a_failed_check_leaves_the_viewer_unconfirmed(
    app: Any, gql: GQL, alice: User, bob: User, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's row could not be read (a timeout, injected once): the path that answers instead
    reads it again, and a suspended user still gets 401 with nothing written."""
    article = await create_article(gql, bob)
    await gql.ok(PAGE, token=alice.token)
    await _suspend(app, "alice")
    failures = [TimeoutError("the pool had no connection in time")]
    read = backend.confirm_viewer

    async def read_once_failing(user_id: int, db: Any) -> Any:
        if failures:
            raise failures.pop()
        return await read(user_id, db)

    monkeypatch.setattr(backend, "confirm_viewer", read_once_failing)
    _refused(await gql(query, {"s": article["slug"]} if "$s" in query else None, alice.token), SUSPENDED)
    assert not failures  # the injected failure was met, and the read after it refused her
    after = await gql.ok(COMMENTS, {"s": article["slug"]})
    assert after["article"]["comments"] == {"nodes": []}
