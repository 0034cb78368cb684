"""suspendUser and unsuspendUser through the real endpoint: role rules, refused tokens, login and refresh, audit."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.models import refresh_token_table, user_table
from graph.app import create_app
from graph.settings import Settings
from tests.conftest import GQL, User, Users, create_article, pk_of, set_role
from tests.security.conftest import AuditLog, assert_request_of

SUSPEND = (
    "mutation S($u: String!, $r: String!, $until: DateTime) "
    "{ suspendUser(username: $u, reason: $r, until: $until) { username } }"
)
UNSUSPEND = "mutation U($u: String!) { unsuspendUser(username: $u) { username } }"
VIEWER = "{ viewer { username } }"
LOGIN = "mutation L($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token refreshToken } }"
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { token } }"


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> AuditLog:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    return AuditLog(caplog)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


async def staff(app: Any, users: Users, name: str, role: str) -> User:
    user = await users.register(name)
    await set_role(app, name, role)
    return user


async def test_role_rules(app: Any, gql: GQL, users: Users, audit_log: AuditLog) -> None:
    admin = await staff(app, users, "admin", "ADMIN")
    other_admin = await staff(app, users, "admin2", "ADMIN")
    moderator = await staff(app, users, "mod", "MODERATOR")
    other_moderator = await staff(app, users, "mod2", "MODERATOR")
    user = await users.register("user")
    other_user = await users.register("user2")
    # (actor, target, expected code or None for success); self-suspension is FORBIDDEN
    table: list[tuple[User | None, User, str | None]] = [
        (moderator, user, None),
        (moderator, other_moderator, "FORBIDDEN"),
        (moderator, admin, "FORBIDDEN"),
        (moderator, moderator, "FORBIDDEN"),
        (admin, other_moderator, None),
        (admin, other_admin, None),
        (admin, user, None),
        (admin, admin, "FORBIDDEN"),
        (user, other_user, "FORBIDDEN"),
        (user, user, "FORBIDDEN"),
        (None, user, "UNAUTHENTICATED"),
    ]
    for actor, target, expected in table:
        token = actor.token if actor is not None else None
        for query, variables in (
            (SUSPEND, {"u": target.username, "r": "spam"}),
            (UNSUSPEND, {"u": target.username}),
        ):
            audit_log.clear()
            response = await gql(query, variables, token)
            who = f"{actor.username if actor else 'anonymous'} -> {target.username}"
            if expected is None:
                assert not response.errors, (who, response.errors)
                assert response.data is not None
            else:
                assert response.codes == [expected], (who, response.body)
                assert response.data is None
                denied = audit_log.records("permission_denied")
                assert len(denied) == 1 and denied[0].__dict__["viewer_id"] == (
                    pk_of(actor.id) if actor is not None else None
                ), who


async def test_suspended_user_is_refused_everywhere_until_lifted(
    app: Any, gql: GQL, users: Users, alice: User, audit_log: AuditLog
) -> None:
    moderator = await staff(app, users, "mod", "MODERATOR")
    assert await gql.ok(VIEWER, token=alice.token) == {"viewer": {"username": "alice"}}

    response = await gql(SUSPEND, {"u": "alice", "r": "spam"}, moderator.token)
    assert response.data == {"suspendUser": {"username": "alice"}}, response.body
    record = audit_log.one("user_suspended")
    assert_request_of(record, response)
    assert record["viewer_id"] == pk_of(moderator.id)
    assert record["target_user_id"] == pk_of(alice.id) and record["source"] == "api"
    assert record["until"] is None and record["sessions_revoked"] == 1
    assert record["levelname"] == "WARNING"

    # the same token that worked a moment ago
    refused = await gql(VIEWER, token=alice.token)
    assert refused.status == 401
    assert refused.codes == ["UNAUTHENTICATED"]
    assert refused.errors[0]["message"] == "account suspended"
    assert audit_log.one("token_rejected")["reason"] == "suspended"

    login = await gql(LOGIN, {"e": alice.email, "p": alice.password})
    assert login.codes == ["UNAUTHENTICATED"] and login.errors[0]["message"] == "account suspended"
    # a wrong password says nothing about the suspension
    wrong = await gql(LOGIN, {"e": alice.email, "p": "not-her-password"})
    assert wrong.errors[0]["message"] == "email or password is invalid"
    refresh = await gql(REFRESH, {"t": alice.refresh_token})
    assert refresh.codes == ["UNAUTHENTICATED"] and refresh.errors[0]["message"] == "account suspended"
    assert {(r.__dict__["via"], r.__dict__["user_id"]) for r in audit_log.records("sign_in_refused")} == {
        ("login", pk_of(alice.id)),
        ("refresh", pk_of(alice.id)),
    }

    audit_log.clear()
    lifted = await gql(UNSUSPEND, {"u": "alice"}, moderator.token)
    assert lifted.data == {"unsuspendUser": {"username": "alice"}}, lifted.body
    record = audit_log.one("user_unsuspended")
    assert_request_of(record, lifted)
    assert record["was_suspended"] is True and record["viewer_id"] == pk_of(moderator.id)
    assert record["levelname"] == "WARNING"
    assert await gql.ok(VIEWER, token=alice.token) == {"viewer": {"username": "alice"}}
    assert (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["token"]
    # the suspension revoked the refresh token for good
    again = await gql(REFRESH, {"t": alice.refresh_token})
    assert again.errors[0]["message"] == "refresh token is invalid or expired"


async def test_until_in_the_past_is_bad_input_and_an_expired_suspension_lets_the_user_back(
    app: Any, gql: GQL, users: Users, alice: User
) -> None:
    admin = await staff(app, users, "admin", "ADMIN")
    past = await gql(
        SUSPEND,
        {"u": "alice", "r": "spam", "until": iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))},
        admin.token,
    )
    assert past.codes == ["BAD_USER_INPUT"] and "until" in past.error_fields(), past.body
    blank = await gql(SUSPEND, {"u": "alice", "r": "   "}, admin.token)
    assert blank.codes == ["BAD_USER_INPUT"] and blank.error_fields() == {"reason": ["can't be empty"]}
    unknown = await gql(SUSPEND, {"u": "nobody", "r": "spam"}, admin.token)
    assert unknown.codes == ["NOT_FOUND"]
    assert (await gql(UNSUSPEND, {"u": "nobody"}, admin.token)).codes == ["NOT_FOUND"]
    assert await gql.ok(VIEWER, token=alice.token) == {"viewer": {"username": "alice"}}  # nothing happened

    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    await gql.ok(SUSPEND, {"u": "alice", "r": "cool off", "until": iso(until)}, admin.token)
    assert (await gql(VIEWER, token=alice.token)).status == 401
    # a day later, as far as the database can tell: the suspension has run out
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(
            sa.update(user_table)
            .where(user_table.c.username == "alice")
            .values(suspended_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert await gql.ok(VIEWER, token=alice.token) == {"viewer": {"username": "alice"}}
    assert (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["token"]


async def test_suspending_revokes_every_refresh_token(app: Any, gql: GQL, users: Users, alice: User) -> None:
    admin = await staff(app, users, "admin", "ADMIN")
    await gql.ok(LOGIN, {"e": alice.email, "p": alice.password})  # a second session
    await gql.ok(SUSPEND, {"u": "alice", "r": "spam"}, admin.token)
    async with app.state.conduit.db.engine.connect() as connection:
        live = await connection.execute(
            sa.select(sa.func.count())
            .select_from(refresh_token_table)
            .where(refresh_token_table.c.user_id == pk_of(alice.id), refresh_token_table.c.revoked_at.is_(None))
        )
        assert live.scalar() == 0
        row = (
            await connection.execute(
                sa.select(user_table.c.suspension_reason, user_table.c.suspended_by_id).where(
                    user_table.c.username == "alice"
                )
            )
        ).one()
    assert tuple(row) == ("spam", pk_of(admin.id))


async def test_the_suspension_check_costs_no_statement(app: Any, gql: GQL, alice: User, statements: list[str]) -> None:
    """A signed-in planned query costs the anonymous one's statements: the viewer's check, the
    suspension's included, is a column of the first (auth.backend.KnownViewers)."""
    query = "{ articles(first: 10) { totalCount nodes { slug title author { username } } } }"
    await create_article(gql, alice)  # an empty page has no row to carry the check: it is read on its own
    await gql.ok(query)  # plans and caches warm
    await gql.ok(query, token=alice.token)
    statements.clear()
    await gql.ok(query)
    anonymous = list(statements)
    statements.clear()
    await gql.ok(query, token=alice.token)
    signed_in = list(statements)
    assert len(signed_in) == len(anonymous), (anonymous, signed_in)
    viewer_reads = [sql for sql in signed_in if "suspended_until" in sql]
    assert len(viewer_reads) == 1 and viewer_reads[0] not in anonymous, signed_in


@pytest.mark.parametrize("planned", [True, False], ids=["planned", "ordinary"])
async def test_the_payload_shows_the_suspension_set_and_lifted(settings: Settings, planned: bool) -> None:
    """suspendUser and unsuspendUser answer with the user as the write left them, on both execution paths."""
    app = create_app(settings.model_copy(update={"planned_execution": planned}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            gql = GQL(client)
            users = Users(gql)
            moderator = await staff(app, users, "mod", "MODERATOR")
            await users.register("user")
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
            selection = "{ username suspension { reason until by { username } } }"
            suspended = await gql.ok(
                f"mutation S($u: String!, $r: String!, $until: DateTime) "
                f"{{ suspendUser(username: $u, reason: $r, until: $until) {selection} }}",
                {"u": "user", "r": "spam", "until": iso(until)},
                moderator.token,
            )
            assert suspended["suspendUser"]["suspension"] == {
                "reason": "spam",
                "until": iso(until),
                "by": {"username": "mod"},
            }
            lifted = await gql.ok(
                f"mutation U($u: String!) {{ unsuspendUser(username: $u) {selection} }}", {"u": "user"}, moderator.token
            )
            assert lifted["unsuspendUser"] == {"username": "user", "suspension": None}
    finally:
        await app.state.conduit.broker.close()
        await app.state.conduit.db.dispose()
