"""deleteViewer and deleteUser: everything of the user goes, in one transaction, and every counter stays right.

Every stored counter is compared with a recount from the base tables after the deletion:
``article.favorites_count`` against ``favorite``, ``tag.articles_count`` against ``article_tag``,
``popularTags`` against the recount's order, and ``followersCount`` / ``followingCount`` through
the API against ``follow``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from db.models import (
    account_token_table,
    article_table,
    article_tag_table,
    comment_table,
    favorite_table,
    follow_table,
    mail_outbox_table,
    refresh_token_table,
    tag_table,
    user_table,
)
from graph.ids import from_global_id
from tests.conftest import GQL, User, Users, create_article, pk_of, set_role
from tests.security.conftest import AuditLog, assert_request_of, snapshot

DELETE_VIEWER = "mutation D($p: String!) { deleteViewer(password: $p) }"
DELETE_USER = "mutation D($u: String!) { deleteUser(username: $u) }"
SUSPEND = 'mutation S($u: String!) { suspendUser(username: $u, reason: "spam") { username } }'
COMMENT = "mutation C($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id } }"
FAVORITE = "mutation F($s: String!) { favoriteArticle(slug: $s) { id } }"
FOLLOW = "mutation F($u: String!) { followUser(username: $u) { id } }"
PROFILE = "query P($u: String!) { user(username: $u) { followersCount followingCount } }"
POPULAR = "{ popularTags(first: 100) { name articlesCount } }"
SEARCH = "query S($q: String!) { articles(search: $q) { totalCount nodes { slug } } }"
VIEWER = "{ viewer { username } }"
DELETE_COMMENT = "mutation D($id: ID!) { deleteComment(id: $id) }"
DELETE_ARTICLE = "mutation D($s: String!) { deleteArticle(slug: $s) }"


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> AuditLog:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    return AuditLog(caplog)


async def _rows(app: Any, statement: Any) -> list[Any]:
    async with app.state.conduit.db.engine.connect() as connection:
        return list(await connection.execute(statement))


async def _world(app: Any, gql: GQL, users: Users) -> dict[str, Any]:
    """The victim writes, comments, favorites and follows; others do the same to them."""
    victim = await users.register("victim")
    bob = await users.register("bob")
    carol = await users.register("carol")
    a1 = await create_article(gql, victim, "Victim one", body="zanzibar alpha", tagList=["x", "y"])
    a2 = await create_article(gql, victim, "Victim two", body="zanzibar beta", tagList=["y", "z"])
    b1 = await create_article(gql, bob, "Bob one", tagList=["y", "w"])
    c1 = await create_article(gql, carol, "Carol one", tagList=["x"])
    for author, slug, body in [
        (victim, a1["slug"], "own"),
        (victim, b1["slug"], "on bob's"),
        (bob, a1["slug"], "bob on victim's"),
        (carol, b1["slug"], "carol on bob's"),
        (carol, c1["slug"], "carol on her own"),
    ]:
        await gql.ok(COMMENT, {"s": slug, "b": body}, author.token)
    for fan, article in [(victim, a1), (victim, b1), (victim, c1), (bob, a1), (bob, b1), (carol, a2), (carol, b1)]:
        await gql.ok(FAVORITE, {"s": article["slug"]}, fan.token)
    for follower, followee in [(victim, bob), (bob, victim), (carol, victim), (victim, carol), (bob, carol)]:
        await gql.ok(FOLLOW, {"u": followee.username}, follower.token)
    # a moderator's suspension names them; mailed tokens and outbox rows are theirs
    await set_role(app, "victim", "MODERATOR")
    dave = await users.register("dave")
    await gql.ok(SUSPEND, {"u": "dave"}, victim.token)
    now = dt.datetime.now(dt.UTC)
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(
            sa.insert(account_token_table).values(
                user_id=pk_of(victim.id),
                purpose="password_reset",
                email=victim.email,
                token_hash="f" * 64,
                created_at=now,
                expires_at=now + dt.timedelta(minutes=30),
            )
        )
        await connection.execute(
            sa.insert(mail_outbox_table),
            [
                {"kind": "password_reset", "recipient": victim.email, "user_id": pk_of(victim.id)},
                {"kind": "password_reset", "recipient": victim.email.upper(), "user_id": None},
                {"kind": "password_reset", "recipient": bob.email, "user_id": pk_of(bob.id)},
            ],
        )
    return {"victim": victim, "bob": bob, "carol": carol, "dave": dave, "b1": b1, "c1": c1}


async def _assert_counters_match_recount(app: Any, gql: GQL, usernames: list[str]) -> None:
    favorites = await _rows(
        app,
        sa.select(
            article_table.c.slug,
            article_table.c.favorites_count,
            sa.select(sa.func.count())
            .select_from(favorite_table)
            .where(favorite_table.c.article_id == article_table.c.id)
            .scalar_subquery(),
        ),
    )
    assert [(slug, stored) for slug, stored, _ in favorites] == [(slug, recount) for slug, _, recount in favorites]
    tags = await _rows(
        app,
        sa.select(
            tag_table.c.name,
            tag_table.c.articles_count,
            sa.select(sa.func.count())
            .select_from(article_tag_table)
            .where(article_tag_table.c.tag_id == tag_table.c.id)
            .scalar_subquery(),
        ),
    )
    assert [(name, stored) for name, stored, _ in tags] == [(name, recount) for name, _, recount in tags]
    expected = sorted(((name, n) for name, _, n in tags if n > 0), key=lambda item: (-item[1], item[0]))
    popular = (await gql.ok(POPULAR))["popularTags"]
    assert popular == [{"name": name, "articlesCount": n} for name, n in expected]
    for username in usernames:
        (user_id,) = (await _rows(app, sa.select(user_table.c.id).where(user_table.c.username == username)))[0]
        followers = await _rows(app, sa.select(sa.func.count()).where(follow_table.c.followee_id == user_id))
        following = await _rows(app, sa.select(sa.func.count()).where(follow_table.c.follower_id == user_id))
        profile = (await gql.ok(PROFILE, {"u": username}))["user"]
        assert profile == {"followersCount": followers[0][0], "followingCount": following[0][0]}, username


@pytest.mark.parametrize("via", ["deleteUser", "deleteViewer"])
async def test_deletion_removes_everything_and_keeps_every_counter(
    app: Any, gql: GQL, users: Users, audit_log: AuditLog, via: str
) -> None:
    world = await _world(app, gql, users)
    victim: User = world["victim"]
    victim_id = pk_of(victim.id)
    assert (await gql.ok(SEARCH, {"q": "zanzibar"}))["articles"]["totalCount"] == 2
    audit_log.clear()

    if via == "deleteUser":
        admin = await users.register("admin")
        await set_role(app, "admin", "ADMIN")
        response = await gql(DELETE_USER, {"u": "victim"}, admin.token)
        assert response.data == {"deleteUser": victim.id}, response.body
        actor_id, by = pk_of(admin.id), "admin"
    else:
        response = await gql(DELETE_VIEWER, {"p": victim.password}, victim.token)
        assert response.data == {"deleteViewer": True}, response.body
        actor_id, by = victim_id, "self"

    record = audit_log.one("user_deleted")
    assert_request_of(record, response)
    assert record["viewer_id"] == actor_id and record["by"] == by and record["source"] == "api"
    assert record["target_user_id"] == victim_id
    counts = {name: record[name] for name in ("articles", "comments", "comments_on_articles", "favorites")}
    assert counts == {"articles": 2, "comments": 2, "comments_on_articles": 1, "favorites": 3}
    assert (
        record["favorites_of_articles"] == 2
        and record["follows"] == 4
        and record["sessions"] == 1
        and "dropped_fields" not in record
    )

    # nothing of theirs is left, in any table
    for table, column in [
        (user_table, user_table.c.id),
        (article_table, article_table.c.author_id),
        (comment_table, comment_table.c.author_id),
        (favorite_table, favorite_table.c.user_id),
        (follow_table, follow_table.c.follower_id),
        (follow_table, follow_table.c.followee_id),
        (refresh_token_table, refresh_token_table.c.user_id),
        (account_token_table, account_token_table.c.user_id),
        (mail_outbox_table, mail_outbox_table.c.user_id),
        (user_table, user_table.c.suspended_by_id),
    ]:
        assert await _rows(app, sa.select(table).where(column == victim_id)) == [], (table.name, column.name)
    outbox = await _rows(app, sa.select(mail_outbox_table.c.recipient))
    assert [recipient for (recipient,) in outbox] == [world["bob"].email]
    # the comment bob wrote on the victim's article went with it; carol's on bob's stayed
    bodies = sorted(body for (body,) in await _rows(app, sa.select(comment_table.c.body)))
    assert bodies == ["carol on bob's", "carol on her own"]
    # dave stays suspended, by nobody now
    dave = await _rows(
        app, sa.select(user_table.c.suspended_at, user_table.c.suspended_by_id).where(user_table.c.username == "dave")
    )
    assert dave[0][0] is not None and dave[0][1] is None

    await _assert_counters_match_recount(app, gql, ["bob", "carol"])
    favorites = dict(
        tuple(row) for row in await _rows(app, sa.select(article_table.c.slug, article_table.c.favorites_count))
    )
    assert favorites == {world["b1"]["slug"]: 2, world["c1"]["slug"]: 0}
    assert (await gql.ok(POPULAR))["popularTags"] == [
        {"name": "w", "articlesCount": 1},
        {"name": "x", "articlesCount": 1},
        {"name": "y", "articlesCount": 1},
    ]
    assert (await gql.ok(SEARCH, {"q": "zanzibar"}))["articles"] == {"totalCount": 0, "nodes": []}

    # their token stops working at once
    refused = await gql(VIEWER, token=victim.token)
    assert refused.status == 401 and refused.codes == ["UNAUTHENTICATED"]


async def test_wrong_password_leaves_everything_intact(app: Any, gql: GQL, users: Users) -> None:
    world = await _world(app, gql, users)
    before = await snapshot(app)
    response = await gql(DELETE_VIEWER, {"p": "not-the-password"}, world["victim"].token)
    assert response.codes == ["BAD_USER_INPUT"] and response.error_fields() == {"password": ["is invalid"]}
    assert response.data is None
    assert await snapshot(app) == before
    assert (await gql(DELETE_VIEWER, {"p": "whatever1"})).codes == ["UNAUTHENTICATED"]


async def test_the_last_admin_cannot_be_deleted(app: Any, gql: GQL, users: Users, alice: User) -> None:
    admin = await users.register("admin")
    await set_role(app, "admin", "ADMIN")
    before = await snapshot(app)
    itself = await gql(DELETE_USER, {"u": "admin"}, admin.token)
    assert itself.codes == ["BAD_USER_INPUT"] and "username" in itself.error_fields(), itself.body
    viewer = await gql(DELETE_VIEWER, {"p": admin.password}, admin.token)
    assert viewer.codes == ["BAD_USER_INPUT"] and "viewer" in viewer.error_fields(), viewer.body
    assert await snapshot(app) == before

    # only admins delete others; anonymous is asked to sign in
    assert (await gql(DELETE_USER, {"u": "admin"}, alice.token)).codes == ["FORBIDDEN"]
    assert (await gql(DELETE_USER, {"u": "admin"})).codes == ["UNAUTHENTICATED"]
    assert (await gql(DELETE_USER, {"u": "nobody"}, admin.token)).codes == ["NOT_FOUND"]

    # with a second admin, either may go
    second = await users.register("second")
    await set_role(app, "second", "ADMIN")
    assert (await gql.ok(DELETE_USER, {"u": "admin"}, second.token))["deleteUser"] == admin.id
    assert (await gql(DELETE_VIEWER, {"p": second.password}, second.token)).codes == ["BAD_USER_INPUT"]


async def test_moderators_removing_content_is_audited(
    app: Any, gql: GQL, users: Users, alice: User, audit_log: AuditLog
) -> None:
    moderator = await users.register("mod")
    await set_role(app, "mod", "MODERATOR")
    own = await create_article(gql, alice, "Mine")
    theirs = await create_article(gql, alice, "Hers")
    mine = await gql.ok(COMMENT, {"s": own["slug"], "b": "hello"}, alice.token)
    hers = await gql.ok(COMMENT, {"s": theirs["slug"], "b": "again"}, alice.token)
    audit_log.clear()

    await gql.ok(DELETE_COMMENT, {"id": mine["addComment"]["id"]}, alice.token)
    await gql.ok(DELETE_ARTICLE, {"s": own["slug"]}, alice.token)
    assert audit_log.records("content_removed") == []  # authors removing their own content

    removed = await gql(DELETE_COMMENT, {"id": hers["addComment"]["id"]}, moderator.token)
    assert not removed.errors, removed.body
    record = audit_log.one("content_removed")
    assert_request_of(record, removed)
    assert (record["kind"], record["author_id"], record["viewer_id"]) == (
        "comment",
        pk_of(alice.id),
        pk_of(moderator.id),
    )
    assert record["content_id"] == from_global_id(hers["addComment"]["id"])[1]  # type: ignore[index]
    assert record["levelname"] == "WARNING"

    audit_log.clear()
    removed = await gql(DELETE_ARTICLE, {"s": theirs["slug"]}, moderator.token)
    assert not removed.errors, removed.body
    record = audit_log.one("content_removed")
    assert_request_of(record, removed)
    assert (record["kind"], record["author_id"], record["viewer_id"]) == (
        "article",
        pk_of(alice.id),
        pk_of(moderator.id),
    )
    assert record["content_id"] == from_global_id(theirs["id"])[1]  # type: ignore[index]


async def test_two_admins_deleting_each_other_leave_one(app: Any, gql: GQL, users: Users) -> None:
    """Concurrent deletions queue on the admins' rows: one wins, the other finds the last admin."""
    first = await users.register("first")
    second = await users.register("second")
    for name in ("first", "second"):
        await set_role(app, name, "ADMIN")
    one, two = await asyncio.gather(
        gql(DELETE_USER, {"u": "second"}, first.token), gql(DELETE_USER, {"u": "first"}, second.token)
    )
    outcomes = sorted([tuple(one.codes), tuple(two.codes)])
    # the loser is refused: its viewer is gone (401) or is now the last admin
    assert outcomes[0] == () and outcomes[1] in {("BAD_USER_INPUT",), ("UNAUTHENTICATED",)}, (one.body, two.body)
    admins = await _rows(app, sa.select(user_table.c.username).where(user_table.c.role == "ADMIN"))
    assert len(admins) == 1
