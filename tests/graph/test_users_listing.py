"""``users`` (moderators and admins), ``User.emailVerified`` and ``User.suspension`` through the API.

Every test runs on both execution paths (planned SQL and graphql-core) and both engines; the
differential test in ``test_planned.py`` checks that the two paths answer byte for byte alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from db.models import user_table, utcnow
from graph.settings import Settings
from tests.conftest import GQL, Users, set_role

USERS = """
query Users($first: Int, $after: String, $search: String, $role: Role, $suspended: Boolean) {
  users(first: $first, after: $after, search: $search, role: $role, suspended: $suspended) {
    totalCount
    edges { cursor node { username email emailVerified role suspension { reason until by { username } } } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


@pytest.fixture(params=["planned", "ordinary"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update={"planned_execution": request.param == "planned"})


async def _update(app: Any, username: str, **values: Any) -> None:
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.update(user_table).where(user_table.c.username == username).values(**values))


async def test_only_moderators_and_admins_list_users(gql: GQL, users: Users, app: Any) -> None:
    alice = await users.register("alice")
    anonymous = await gql(USERS)
    assert anonymous.codes == ["FORBIDDEN"] and anonymous.data is None
    assert (await gql(USERS, token=alice.token)).codes == ["FORBIDDEN"]
    await set_role(app, "alice", "MODERATOR")
    listed = await gql.ok(USERS, token=alice.token)
    assert [edge["node"]["username"] for edge in listed["users"]["edges"]] == ["alice"]
    await set_role(app, "alice", "USER")  # a demotion counts at once
    assert (await gql(USERS, token=alice.token)).codes == ["FORBIDDEN"]


async def test_users_are_listed_newest_first_filtered_and_paged(gql: GQL, users: Users, app: Any) -> None:
    for name in ["ann", "Anna_B", "bert", "carl"]:
        await users.register(name, email=f"{name}@Example.com")
    await users.register("dora", email="d%x@example.com")
    admin = await users.register("root", email="zed@example.com")
    await set_role(app, "root", "ADMIN")

    async def listed(**variables: Any) -> list[str]:
        data = await gql.ok(USERS, variables, admin.token)
        assert data["users"]["totalCount"] == len(data["users"]["edges"])  # every page here holds them all
        return [edge["node"]["username"] for edge in data["users"]["edges"]]

    assert await listed() == ["root", "dora", "carl", "bert", "Anna_B", "ann"]
    # the start of a username or an email, case-insensitively; LIKE's wildcards are plain text
    assert await listed(search="AN") == ["Anna_B", "ann"]
    assert await listed(search="anna_") == ["Anna_B"]
    assert await listed(search="D%") == ["dora"]
    assert await listed(search="%") == []
    assert await listed(search="_") == []
    assert await listed(search="zed@") == ["root"]
    assert await listed(search="example") == []  # not a prefix
    assert await listed(role="ADMIN") == ["root"]
    assert await listed(role="ADMIN", search="a") == []

    await _update(app, "bert", suspended_at=utcnow(), suspension_reason="spam", suspended_by_id=None)
    await _update(
        app,
        "carl",
        suspended_at=utcnow() - dt.timedelta(days=2),
        suspended_until=utcnow() - dt.timedelta(days=1),
        suspension_reason="old",
    )
    assert await listed(suspended=True) == ["bert"]  # carl's suspension has ended
    assert await listed(suspended=False, search="c") == ["carl"]

    first = await gql.ok(USERS, {"first": 2}, admin.token)
    page = first["users"]
    assert [edge["node"]["username"] for edge in page["edges"]] == ["root", "dora"]
    assert page["totalCount"] == 6 and page["pageInfo"]["hasNextPage"] and not page["pageInfo"]["hasPreviousPage"]
    rest = await gql.ok(USERS, {"first": 10, "after": page["pageInfo"]["endCursor"]}, admin.token)
    assert [edge["node"]["username"] for edge in rest["users"]["edges"]] == ["carl", "bert", "Anna_B", "ann"]
    assert rest["users"]["pageInfo"]["hasPreviousPage"] and not rest["users"]["pageInfo"]["hasNextPage"]

    refused = await gql(USERS, {"first": 101}, admin.token)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert (await gql(USERS, {"after": "garbage"}, admin.token)).codes == ["BAD_USER_INPUT"]


async def test_suspension_and_email_verified_are_private(gql: GQL, users: Users, app: Any) -> None:
    alice = await users.register("alice")
    await users.register("bob")
    mod = await users.register("mod")
    admin = await users.register("root")
    await set_role(app, "mod", "MODERATOR")
    await set_role(app, "root", "ADMIN")
    until = utcnow() + dt.timedelta(days=3)
    await _update(app, "bob", suspended_at=utcnow(), suspended_until=until, suspension_reason="spam")
    await _update(app, "bob", suspended_by_id=(await _id(app, "mod")), email_verified=True)
    profile = "query($u: String!) { user(username: $u) { emailVerified suspension { reason until by { username } } } }"

    async def seen_by(token: str | None) -> Any:
        return (await gql.ok(profile, {"u": "bob"}, token))["user"]

    hidden = {"emailVerified": None, "suspension": None}
    assert await seen_by(None) == hidden
    assert await seen_by(alice.token) == hidden
    moderator = await seen_by(mod.token)
    assert moderator["emailVerified"] is None  # like email: the user and admins only
    assert moderator["suspension"]["reason"] == "spam" and moderator["suspension"]["by"] == {"username": "mod"}
    assert dt.datetime.fromisoformat(moderator["suspension"]["until"]) == until
    assert await seen_by(admin.token) == {**moderator, "emailVerified": True}
    own = await gql.ok("{ viewer { emailVerified suspension { reason } } }", token=alice.token)
    assert own["viewer"] == {"emailVerified": False, "suspension": None}


async def _id(app: Any, username: str) -> int:
    async with app.state.conduit.db.engine.connect() as connection:
        found: int = (
            await connection.execute(sa.select(user_table.c.id).where(user_table.c.username == username))
        ).scalar_one()
        return found


async def test_statements_do_not_grow_with_the_page(gql: GQL, users: Users, app: Any, statements: list[str]) -> None:
    admin = await users.register("root")
    await set_role(app, "root", "ADMIN")
    for index in range(6):
        await users.register(f"user{index}")
    # the promoted admin's first request reads its row on its own (its known role was USER); after
    # that the check rides on the page's statement (auth.backend.KnownViewers)
    await gql.ok(USERS, {"first": 1}, admin.token)
    counts = []
    for first in (1, 6):
        statements.clear()
        await gql.ok(USERS, {"first": first}, admin.token)
        # the budget's charge is the pipeline's, and leased (db/budget.py): only the first reaches the table
        counts.append(len([s for s in statements if "cost_budget" not in s]))
    assert counts[0] == counts[1], counts
