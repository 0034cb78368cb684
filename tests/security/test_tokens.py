"""Attacks on access tokens, key rotation and refresh-token revocation, through the real /graphql endpoint.

Every refused token must give HTTP 401 ``UNAUTHENTICATED``, change nothing in the database and be
audited as ``token_rejected`` with its reason. tests/auth/test_auth.py checks the basic refusals;
these add the database, the audit reason and what rotation brings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from auth.tokens import TokenService
from db.models import refresh_token_table, user_table
from graph.cli import main
from graph.settings import Settings
from tests.conftest import GQL, SECRET, User, Users, pk_of
from tests.security.conftest import (
    VIEWER,
    AuditLog,
    assert_request_of,
    attack,
    b64url,
    b64url_json,
    serving,
    snapshot,
    unpadded_json,
)

ATTACKER_KEY = "attacker-key-" + "z" * 40
OLD_KID, OLD_KEY = "2026-10", "old-signing-key-" + "o" * 40
NEW_KID, NEW_KEY = "2026-11", "new-signing-key-" + "n" * 40

REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { token refreshToken } }"
LOGIN = "mutation L($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token refreshToken } }"
LOGOUT = "mutation Logout($t: String) { logout(refreshToken: $t) }"
CHANGE_PASSWORD = "mutation P($p: String!) { updateViewer(input: {password: $p}) { username } }"


def claims(sub: int | str, **overrides: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    values: dict[str, Any] = {"sub": str(sub), "iat": now, "exp": now + 900, "jti": uuid.uuid4().hex, "role": "USER"}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: str) -> str:
    """An HS256 JWT built without PyJWT, which refuses to write some malformed headers."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def with_payload(token: str, **changes: Any) -> str:
    """``token`` with claims edited and the original header and signature kept."""
    header, payload, signature = token.split(".")
    return ".".join([header, b64url_json({**unpadded_json(payload), **changes}), signature])


# Each forgery: (alice's real token, alice's pk, bob's pk) -> a token, and the audited reason.
Forgery = Callable[[str, int, int], str]


def _issued(**offset: float) -> Forgery:
    return lambda _t, alice, _b: TokenService(SECRET).issue_access_token(
        alice, "USER", now=dt.datetime.now(dt.UTC) + dt.timedelta(**offset)
    )


FORGERIES: dict[str, tuple[Forgery, str]] = {
    "alg none": (lambda _t, alice, _b: jwt.encode(claims(alice), None, algorithm="none"), "algorithm"),
    "hand-built alg NONE, no signature": (
        lambda _t, alice, _b: f"{b64url_json({'alg': 'NONE', 'typ': 'JWT'})}.{b64url_json(claims(alice))}.",
        "algorithm",
    ),
    "HS384 with the server's key": (
        lambda _t, alice, _b: jwt.encode(claims(alice), SECRET, algorithm="HS384"),
        "algorithm",
    ),
    "signed with another key": (lambda _t, alice, _b: jwt.encode(claims(alice), ATTACKER_KEY), "bad_signature"),
    "sub edited to bob, old signature": (lambda t, _a, bob: with_payload(t, sub=str(bob)), "bad_signature"),
    "role edited to ADMIN, old signature": (lambda t, _a, _b: with_payload(t, role="ADMIN"), "bad_signature"),
    "exp pushed a year, old signature": (
        lambda t, _a, _b: with_payload(t, exp=int(dt.datetime.now(dt.UTC).timestamp()) + 365 * 86400),
        "bad_signature",
    ),
    "signature stripped": (lambda t, _a, _b: t.rsplit(".", 1)[0] + ".", "bad_signature"),
    "own key in a jwk header": (
        lambda _t, alice, _b: jwt.encode(
            claims(alice),
            ATTACKER_KEY,
            headers={"jwk": {"kty": "oct", "k": b64url(ATTACKER_KEY.encode())}, "kid": "attacker"},
        ),
        "bad_signature",
    ),
    "expired two hours ago": (_issued(hours=-2), "expired"),
    "issued an hour from now": (_issued(hours=1), "not_yet_valid"),
    "no iat": (lambda _t, alice, _b: jwt.encode(claims(alice, iat=None), SECRET), "missing_claim"),
    "no exp": (lambda _t, alice, _b: jwt.encode(claims(alice, exp=None), SECRET), "missing_claim"),
    "sub not a user id": (lambda _t, _a, _b: jwt.encode(claims("1 OR 1=1"), SECRET), "malformed"),
    "not a JWT": (lambda _t, _a, _b: "not-a-jwt", "malformed"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_401_changes_nothing_and_is_audited(
    gql: GQL, app: Any, alice: User, bob: User, audit_log: AuditLog, name: str
) -> None:
    forge, reason = FORGERIES[name]
    token = forge(alice.token, pk_of(alice.id), pk_of(bob.id))
    response = await attack(gql, app, f"Bearer {token}")
    record = audit_log.one("token_rejected")
    assert record["reason"] == reason
    assert_request_of(record, response)
    assert token not in str(record)
    # the real token still works: the refusal was about the forgery, not the user
    assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["username"] == "alice"


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer", "Bearer a b", "JWT x.y.z"])
async def test_malformed_authorization_header_is_401_and_audited(
    gql: GQL, app: Any, alice: User, audit_log: AuditLog, header: str
) -> None:
    await attack(gql, app, header)
    assert audit_log.one("token_rejected")["reason"] == "bad_header"


async def test_token_of_a_deleted_user_is_401_changes_nothing_and_is_audited(
    gql: GQL, app: Any, alice: User, audit_log: AuditLog
) -> None:
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.delete(user_table).where(user_table.c.id == pk_of(alice.id)))
    response = await attack(gql, app, f"Bearer {alice.token}")
    record = audit_log.one("token_rejected")
    assert (record["reason"], record["user_id"]) == ("deleted_user", pk_of(alice.id))
    assert_request_of(record, response)


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer", "token"])
async def test_both_schemes_still_work(gql: GQL, alice: User, audit_log: AuditLog, scheme: str) -> None:
    response = await gql(VIEWER, Authorization=f"{scheme} {alice.token}")
    assert response.status == 200
    assert response.data["viewer"]["username"] == "alice"
    assert not audit_log.records("token_rejected")


async def test_a_few_seconds_of_clock_skew_on_iat_are_tolerated(gql: GQL, app: Any, alice: User) -> None:
    tokens: TokenService = app.state.conduit.tokens
    ahead = dt.datetime.now(dt.UTC) + tokens.leeway / 2
    token = tokens.issue_access_token(pk_of(alice.id), "USER", now=ahead)
    assert (await gql.ok(VIEWER, token=token))["viewer"]["username"] == "alice"


async def test_single_key_tokens_carry_no_kid(alice: User) -> None:
    assert "kid" not in jwt.get_unverified_header(alice.token)


# --- key rotation ---------------------------------------------------------------------------


def keyed(settings: Settings, active: str, keys: dict[str, str]) -> Settings:
    """The test's settings with key rotation instead of the single secret: ``keys`` by id, ``active`` signs."""
    return Settings(
        env="test",
        database_url=settings.database_url,
        jwt_secret_file=settings.jwt_secret_file,
        jwt_keys=keys,
        jwt_active_kid=active,
    )


async def test_rotation_keeps_old_tokens_until_their_key_is_removed(settings: Settings, audit_log: AuditLog) -> None:
    old_only = keyed(settings, OLD_KID, {OLD_KID: OLD_KEY})
    async with serving(old_only) as (_app, gql):
        alice = await Users(gql).register("alice")
    assert jwt.get_unverified_header(alice.token)["kid"] == OLD_KID
    assert jwt.decode(alice.token, OLD_KEY, algorithms=["HS256"])["sub"] == str(pk_of(alice.id))

    # the new key becomes active; the old one still verifies what it signed
    both = keyed(settings, NEW_KID, {NEW_KID: NEW_KEY, OLD_KID: OLD_KEY})
    async with serving(both) as (_app, gql):
        assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["username"] == "alice"
        fresh = (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["token"]
        assert jwt.get_unverified_header(fresh)["kid"] == NEW_KID
        assert (await gql.ok(VIEWER, token=fresh))["viewer"]["username"] == "alice"

    # the old key is removed: its tokens are refused, the new key's are not
    new_only = keyed(settings, NEW_KID, {NEW_KID: NEW_KEY})
    async with serving(new_only) as (app, gql):
        response = await attack(gql, app, f"Bearer {alice.token}")
        record = audit_log.one("token_rejected")
        assert (record["reason"], record["kid"]) == ("unknown_kid", OLD_KID)
        assert_request_of(record, response)
        assert (await gql.ok(VIEWER, token=fresh))["viewer"]["username"] == "alice"


KEYED_FORGERIES: dict[str, tuple[Callable[[int], str], str]] = {
    "unknown kid": (lambda alice: jwt.encode(claims(alice), ATTACKER_KEY, headers={"kid": "2099-01"}), "unknown_kid"),
    "path in kid": (
        lambda alice: jwt.encode(claims(alice), ATTACKER_KEY, headers={"kid": "../../../dev/null"}),
        "unknown_kid",
    ),
    "numeric kid": (lambda alice: hand_signed({"alg": "HS256", "kid": 7}, claims(alice), NEW_KEY), "malformed"),
    "active kid, another key": (
        lambda alice: jwt.encode(claims(alice), ATTACKER_KEY, headers={"kid": NEW_KID}),
        "bad_signature",
    ),
    "old kid, new key": (lambda alice: jwt.encode(claims(alice), NEW_KEY, headers={"kid": OLD_KID}), "bad_signature"),
    "no kid, active key": (lambda alice: jwt.encode(claims(alice), NEW_KEY), "missing_kid"),
    "alg none with the active kid": (
        lambda alice: jwt.encode(claims(alice), None, algorithm="none", headers={"kid": NEW_KID}),
        "algorithm",
    ),
}


@pytest.mark.parametrize("name", list(KEYED_FORGERIES))
async def test_forged_kid_is_401_changes_nothing_and_is_audited(
    settings: Settings, audit_log: AuditLog, name: str
) -> None:
    forge, reason = KEYED_FORGERIES[name]
    async with serving(keyed(settings, NEW_KID, {NEW_KID: NEW_KEY, OLD_KID: OLD_KEY})) as (app, gql):
        alice = await Users(gql).register("alice")
        response = await attack(gql, app, f"Bearer {forge(pk_of(alice.id))}")
        record = audit_log.one("token_rejected")
        assert record["reason"] == reason
        assert_request_of(record, response)
        if name == "path in kid":
            assert record["kid"] is None  # never logged: it could forge a log line
        assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["username"] == "alice"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jwt_keys": {NEW_KID: "x" * 31}, "jwt_active_kid": NEW_KID}, "must be at least 32 characters"),
        ({"jwt_keys": {NEW_KID: NEW_KEY, OLD_KID: "short"}, "jwt_active_kid": NEW_KID}, "must be at least 32"),
        ({"jwt_keys": {NEW_KID: NEW_KEY}}, "CONDUIT_JWT_ACTIVE_KID is required"),
        ({"jwt_keys": {NEW_KID: NEW_KEY}, "jwt_active_kid": OLD_KID}, "names no key"),
        ({"jwt_active_kid": NEW_KID}, "needs CONDUIT_JWT_KEYS"),
        ({"jwt_keys": {"a b": NEW_KEY}, "jwt_active_kid": "a b"}, "key id"),
        ({"jwt_keys": {NEW_KID: NEW_KEY}, "jwt_active_kid": NEW_KID, "jwt_secret": SECRET}, "not both"),
    ],
)
def test_bad_key_settings_refuse_to_start(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    settings = Settings(env="production", database_url="sqlite:///unused.db", jwt_secret_file=tmp_path / "s", **changes)
    with pytest.raises(ValueError, match=message) as raised:
        settings.resolve_jwt_secret()
    assert NEW_KEY not in str(raised.value)
    assert not (tmp_path / "s").exists()


def test_keys_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_JWT_KEYS", json.dumps({NEW_KID: NEW_KEY, OLD_KID: OLD_KEY}))
    monkeypatch.setenv("CONDUIT_JWT_ACTIVE_KID", NEW_KID)
    monkeypatch.delenv("CONDUIT_JWT_SECRET", raising=False)
    settings = Settings(jwt_secret_file=tmp_path / "s")
    assert settings.resolve_jwt_keys() == {NEW_KID: NEW_KEY, OLD_KID: OLD_KEY}
    assert settings.resolve_jwt_secret() == NEW_KEY  # production needs no CONDUIT_JWT_SECRET then
    assert NEW_KEY not in repr(settings)


def test_without_rotation_settings_the_single_secret_is_used(tmp_path: Path) -> None:
    settings = Settings(env="production", jwt_secret=SECRET, jwt_secret_file=tmp_path / "s")
    assert settings.resolve_jwt_keys() == {}
    assert settings.resolve_jwt_secret() == SECRET
    with pytest.raises(ValueError, match="CONDUIT_JWT_SECRET is required"):
        Settings(env="production", jwt_secret_file=tmp_path / "s").resolve_jwt_secret()


def test_serve_refuses_a_short_rotation_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "s"))
    monkeypatch.setenv("CONDUIT_JWT_KEYS", json.dumps({NEW_KID: "too-short-key"}))
    monkeypatch.setenv("CONDUIT_JWT_ACTIVE_KID", NEW_KID)
    monkeypatch.delenv("CONDUIT_JWT_SECRET", raising=False)
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "must be at least 32 characters" in err
    assert "too-short-key" not in err


def test_token_service_refuses_an_active_kid_that_is_not_its_signing_key() -> None:
    with pytest.raises(ValueError, match="active_kid"):
        TokenService(NEW_KEY, keys={OLD_KID: OLD_KEY}, active_kid=NEW_KID)
    with pytest.raises(ValueError, match="secret"):
        TokenService(OLD_KEY, keys={NEW_KID: NEW_KEY}, active_kid=NEW_KID)


# --- refresh tokens: password change and logout ----------------------------------------------


async def refresh_rows(app: Any, user: User) -> list[Any]:
    async with app.state.conduit.db.engine.connect() as connection:
        statement = sa.select(refresh_token_table).where(refresh_token_table.c.user_id == pk_of(user.id))
        return list(await connection.execute(statement.order_by(refresh_token_table.c.id)))


async def test_password_change_revokes_every_refresh_token_of_the_user_only(
    gql: GQL, app: Any, alice: User, bob: User, audit_log: AuditLog
) -> None:
    second = (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["refreshToken"]
    await gql.ok(REFRESH, {"t": second})  # a rotated family: one used row, one live row
    assert [row.revoked_at for row in await refresh_rows(app, alice)] == [None, None, None]

    response = await gql(CHANGE_PASSWORD, {"p": "brand-new-password"}, alice.token)
    assert not response.errors
    assert all(row.revoked_at is not None for row in await refresh_rows(app, alice))
    assert [row.revoked_at for row in await refresh_rows(app, bob)] == [None]
    record = audit_log.one("password_changed")
    assert (record["user_id"], record["sessions_revoked"]) == (pk_of(alice.id), 3)
    assert_request_of(record, response)

    # the old refresh tokens mint nothing, and are not mistaken for a theft (they were revoked, not spent)
    before = await snapshot(app)
    for token in (alice.refresh_token, second):
        assert (await gql(REFRESH, {"t": token})).codes == ["UNAUTHENTICATED"]
    after = await snapshot(app)
    assert after["refresh_token"] == before["refresh_token"]
    assert not audit_log.records("refresh_token_reuse_detected")


async def test_logout_revokes_in_the_database(gql: GQL, app: Any, alice: User, bob: User) -> None:
    second = (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["refreshToken"]
    assert await gql.ok(LOGOUT, {"t": alice.refresh_token}, alice.token) == {"logout": True}
    assert [row.revoked_at is not None for row in await refresh_rows(app, alice)] == [True, False]
    assert await gql.ok(LOGOUT, None, alice.token) == {"logout": True}
    assert all(row.revoked_at is not None for row in await refresh_rows(app, alice))
    assert [row.revoked_at for row in await refresh_rows(app, bob)] == [None]
    assert (await gql(REFRESH, {"t": second})).codes == ["UNAUTHENTICATED"]
