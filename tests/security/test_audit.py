"""The security audit log (``conduit.audit``), and that no secret reaches any log, through the real endpoint."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from auth.audit import audit, email_hash
from db.engine import Database
from db.models import rate_limit_event_table, refresh_token_table, user_table
from graph.cli import main
from graph.observability import json_formatter
from tests.conftest import GQL, REGISTER, SECRET, User, create_article, pk_of, set_role
from tests.security.conftest import VIEWER, AuditLog, assert_request_of, snapshot

LOGIN = "mutation L($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token refreshToken } }"
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { token refreshToken } }"
CHANGE_PASSWORD = "mutation P($p: String!) { updateViewer(input: {password: $p}) { username } }"
SET_ROLE = "mutation S($u: String!, $r: Role!) { setUserRole(username: $u, role: $r) { role } }"
DELETE_ARTICLE = "mutation D($slug: String!) { deleteArticle(slug: $slug) }"
UPDATE_ARTICLE = "mutation U($slug: String!) { updateArticle(slug: $slug, input: {title: $slug}) { slug } }"
LOGOUT = "mutation { logout }"
EMAILS = '{ user(username: "alice") { username email } }'


async def fill_bucket(app: Any, bucket: str, count: int) -> None:
    """Record ``count`` rate-limit events in ``bucket`` now, as that many attempts would have."""
    now = dt.datetime.now(dt.UTC)
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.insert(rate_limit_event_table), [{"bucket": bucket, "created_at": now}] * count)


# --- the helper -----------------------------------------------------------------------------


def test_audit_never_logs_credential_fields(audit_log: AuditLog) -> None:
    audit(
        "login_failed",
        password="hunter2-hunter2",
        refresh_token="r-123",
        jwt_secret="s-123",
        api_key="k-123",
        client="10.0.0.1",
    )
    record = audit_log.one("login_failed")
    assert record["dropped_fields"] == ["api_key", "jwt_secret", "password", "refresh_token"]
    assert record["client"] == "10.0.0.1"
    line = json_formatter().format(audit_log.records()[0])
    for value in ("hunter2-hunter2", "r-123", "s-123", "k-123"):
        assert value not in line


def test_audit_fields_are_top_level_json_and_request_id_is_none_outside_a_request(audit_log: AuditLog) -> None:
    audit("role_changed", source="cli", target_user_id=7, old_role="USER", new_role="ADMIN")
    [record] = audit_log.records()
    assert record.levelno == logging.WARNING
    line = json.loads(json_formatter().format(record))
    assert line["logger"] == "conduit.audit"
    assert line["message"] == "role_changed source=cli target_user_id=7 old_role=USER new_role=ADMIN"
    assert {key: line[key] for key in ("event", "request_id", "viewer_id", "target_user_id", "new_role")} == {
        "event": "role_changed",
        "request_id": None,
        "viewer_id": None,
        "target_user_id": 7,
        "new_role": "ADMIN",
    }


def test_audit_refuses_fields_that_would_overwrite_the_log_record(audit_log: AuditLog) -> None:
    audit("permission_denied", msg="forged", levelname="DEBUG", permission="IsAdmin")
    record = audit_log.one("permission_denied")
    assert record["dropped_fields"] == ["levelname", "msg"]
    assert record["levelname"] == "INFO"


def test_email_hash_is_a_short_case_insensitive_pseudonym() -> None:
    assert email_hash("Alice@Example.com ") == email_hash("alice@example.com")
    assert len(email_hash("alice@example.com")) == 12
    assert email_hash("alice@example.com") != email_hash("bob@example.com")


# --- events through the endpoint --------------------------------------------------------------


async def test_failed_login_is_audited_with_a_hashed_email(gql: GQL, alice: User, audit_log: AuditLog) -> None:
    response = await gql(LOGIN, {"e": "Alice@Example.com", "p": "wrong-password"})
    assert response.codes == ["UNAUTHENTICATED"]
    record = audit_log.one("login_failed")
    assert_request_of(record, response)
    assert (record["email_hash"], record["client"], record["viewer_id"]) == (
        email_hash("alice@example.com"),
        "127.0.0.1",
        None,
    )
    line = json_formatter().format(audit_log.records("login_failed")[0]).lower()
    assert "alice@example.com" not in line
    assert "wrong-password" not in line
    # an unknown email is audited the same way (no hint that the account does not exist)
    await gql(LOGIN, {"e": "nobody@example.com", "p": "wrong-password"})
    assert len(audit_log.records("login_failed")) == 2


async def test_locked_login_is_audited_and_issues_nothing(gql: GQL, app: Any, alice: User, audit_log: AuditLog) -> None:
    for _ in range(10):
        assert (await gql(LOGIN, {"e": alice.email, "p": "wrong-password"})).codes == ["UNAUTHENTICATED"]
    before = await snapshot(app)
    response = await gql(LOGIN, {"e": alice.email, "p": alice.password})
    assert response.codes == ["RATE_LIMITED"]
    assert await snapshot(app) == before
    record = audit_log.one("login_locked")
    assert_request_of(record, response)
    assert (record["limit"], record["email_hash"], record["client"]) == (
        "email",
        email_hash(alice.email),
        "127.0.0.1",
    )
    assert record["retry_after"] > 0


async def test_address_lock_on_login_is_audited(gql: GQL, app: Any, alice: User, audit_log: AuditLog) -> None:
    await fill_bucket(app, "login:addr:127.0.0.1", 50)
    before = await snapshot(app)
    response = await gql(LOGIN, {"e": alice.email, "p": alice.password})
    assert response.codes == ["RATE_LIMITED"]
    assert await snapshot(app) == before
    assert audit_log.one("login_locked")["limit"] == "address"


async def test_registration_limit_is_audited_and_creates_nobody(gql: GQL, app: Any, audit_log: AuditLog) -> None:
    await fill_bucket(app, "register:addr:127.0.0.1", 100)
    before = await snapshot(app)
    variables = {"input": {"username": "mallory", "email": "mallory@example.com", "password": "password123"}}
    response = await gql(REGISTER, variables)
    assert response.codes == ["RATE_LIMITED"]
    assert await snapshot(app) == before
    record = audit_log.one("register_limited")
    assert_request_of(record, response)
    assert (record["client"], record["limit"]) == ("127.0.0.1", "address")


async def test_refresh_limit_is_audited_and_spends_nothing(
    gql: GQL, app: Any, alice: User, audit_log: AuditLog
) -> None:
    await fill_bucket(app, "refresh:addr:127.0.0.1", 60)
    before = await snapshot(app)
    response = await gql(REFRESH, {"t": alice.refresh_token})
    assert response.codes == ["RATE_LIMITED"]
    assert await snapshot(app) == before
    record = audit_log.one("refresh_limited")
    assert_request_of(record, response)
    assert record["client"] == "127.0.0.1"


async def test_refresh_token_reuse_is_audited_with_its_family(
    gql: GQL, app: Any, alice: User, audit_log: AuditLog
) -> None:
    await gql.ok(REFRESH, {"t": alice.refresh_token})
    response = await gql(REFRESH, {"t": alice.refresh_token})
    assert response.codes == ["UNAUTHENTICATED"]
    async with app.state.conduit.db.engine.connect() as connection:
        statement = sa.select(refresh_token_table.c.family_id, refresh_token_table.c.revoked_at)
        rows = (await connection.execute(statement)).all()
    # both tokens of the one family (the spent one and its successor) are revoked now
    [(family_id, revoked)] = {(row.family_id, row.revoked_at is not None) for row in rows}
    assert revoked
    record = audit_log.one("refresh_token_reuse_detected")
    assert_request_of(record, response)
    assert (record["family_id"], record["user_id"], record["client"]) == (family_id, pk_of(alice.id), "127.0.0.1")


async def test_role_change_through_the_api_is_audited(
    gql: GQL, app: Any, alice: User, bob: User, audit_log: AuditLog
) -> None:
    await set_role(app, "alice", "ADMIN")
    response = await gql(SET_ROLE, {"u": "bob", "r": "MODERATOR"}, alice.token)
    assert response.data == {"setUserRole": {"role": "MODERATOR"}}
    record = audit_log.one("role_changed")
    assert_request_of(record, response)
    assert {key: record[key] for key in ("source", "viewer_id", "target_user_id", "old_role", "new_role")} == {
        "source": "api",
        "viewer_id": pk_of(alice.id),
        "target_user_id": pk_of(bob.id),
        "old_role": "USER",
        "new_role": "MODERATOR",
    }


def test_role_change_from_the_command_line_is_audited(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit_log: AuditLog
) -> None:
    async def add_carol() -> int:
        db = Database(database_url)
        try:
            async with db.engine.begin() as connection:
                now = dt.datetime.now(dt.UTC)
                values = {"username": "carol", "email": "carol@example.com", "password_hash": "x", "role": "MODERATOR"}
                statement = sa.insert(user_table).values(**values, created_at=now, updated_at=now)
                return int((await connection.execute(statement.returning(user_table.c.id))).scalar_one())
        finally:
            await db.dispose()

    carol = asyncio.run(add_carol())
    monkeypatch.setenv("CONDUIT_DATABASE_URL", database_url)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    assert main(["user", "set-role", "carol", "ADMIN"]) == 0
    record = audit_log.one("role_changed")
    assert {key: record[key] for key in ("source", "viewer_id", "target_user_id", "old_role", "new_role")} == {
        "source": "cli",
        "viewer_id": None,
        "target_user_id": carol,
        "old_role": "MODERATOR",
        "new_role": "ADMIN",
    }
    assert main(["user", "set-role", "nobody", "ADMIN"]) == 1
    assert len(audit_log.records("role_changed")) == 1  # nothing changed, nothing audited


async def test_permission_denials_are_audited_with_class_path_and_viewer(
    gql: GQL, app: Any, alice: User, bob: User, audit_log: AuditLog
) -> None:
    article = await create_article(gql, alice)
    before = await snapshot(app)
    attempts = [
        (DELETE_ARTICLE, {"slug": article["slug"]}, bob, "CanDeleteArticle", "deleteArticle", "FORBIDDEN"),
        (UPDATE_ARTICLE, {"slug": article["slug"]}, bob, "IsArticleAuthor", "updateArticle", "FORBIDDEN"),
        (SET_ROLE, {"u": "bob", "r": "ADMIN"}, bob, "IsAdmin", "setUserRole", "FORBIDDEN"),
        (LOGOUT, None, None, "IsAuthenticated", "logout", "UNAUTHENTICATED"),
    ]
    for query, variables, viewer, permission, path, code in attempts:
        audit_log.clear()
        response = await gql(query, variables, viewer.token if viewer else None)
        assert response.codes == [code]
        record = audit_log.one("permission_denied")
        assert_request_of(record, response)
        expected_viewer = pk_of(viewer.id) if viewer else None
        assert (record["permission"], record["field_path"], record["viewer_id"]) == (permission, path, expected_viewer)
    assert await snapshot(app) == before
    # another user's email reads as null: the normal view of a profile, not an audited denial
    audit_log.clear()
    assert (await gql.ok(EMAILS, token=bob.token))["user"] == {"username": "alice", "email": None}
    assert not audit_log.records()


# --- no secrets in any log --------------------------------------------------------------------


async def test_no_secret_reaches_any_log_while_security_events_do(
    gql: GQL, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # every logger at DEBUG, including those a library set higher (SQLAlchemy's is at WARNING)
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if logging.getLogger(name).level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=name)

    password, wrong, new_password = "first-Passw0rd!", "wrong-Passw0rd?", "second-Passw0rd#"
    email = "dana@example.com"
    registered = await gql(REGISTER, {"input": {"username": "dana", "email": email, "password": password}})
    failed = await gql(LOGIN, {"e": email, "p": wrong})
    logged_in = (await gql.ok(LOGIN, {"e": email, "p": password}))["login"]
    refreshed = (await gql.ok(REFRESH, {"t": logged_in["refreshToken"]}))["refreshToken"]
    reused = await gql(REFRESH, {"t": logged_in["refreshToken"]})
    changed = await gql(CHANGE_PASSWORD, {"p": new_password}, refreshed["token"])
    claims = jwt.decode(refreshed["token"], options={"verify_signature": False})
    forged_token = jwt.encode({**claims, "role": "ADMIN"}, "forged-key-" + "f" * 40)
    forged = await gql(VIEWER, token=forged_token)
    assert not registered.errors and not changed.errors
    assert (failed.codes, forged.status, reused.codes) == (["UNAUTHENTICATED"], 401, ["UNAUTHENTICATED"])

    secrets = {
        "password": password,
        "wrong password": wrong,
        "new password": new_password,
        "JWT secret": SECRET,
        "forged token": forged_token,
        "register access token": registered.data["register"]["token"],
        "register refresh token": registered.data["register"]["refreshToken"],
        "login access token": logged_in["token"],
        "login refresh token": logged_in["refreshToken"],
        "refreshed access token": refreshed["token"],
        "refreshed refresh token": refreshed["refreshToken"],
    }
    formatter = json_formatter()
    captured = [(record, formatter.format(record) + repr(record.__dict__)) for record in caplog.records]
    assert any(record.name.startswith("sqlalchemy.engine") for record, _ in captured), "DEBUG capture is not on"
    for name, value in secrets.items():
        leaks = [text[:300] for _, text in captured if value in text]
        assert not leaks, f"the {name} reached the log: {leaks}"
    assert all(email not in text for record, text in captured if record.name == "conduit.audit")

    events = {getattr(record, "event", None): record for record, _ in captured if record.name == "conduit.audit"}
    expected = {
        "login_failed": failed,
        "password_changed": changed,
        "token_rejected": forged,
        "refresh_token_reuse_detected": reused,
    }
    for event, response in expected.items():
        assert event in events, f"no {event} audit record: {sorted(map(str, events))}"
        assert_request_of(events[event].__dict__, response)
    assert events["token_rejected"].__dict__["reason"] == "bad_signature"
