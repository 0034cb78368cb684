"""Authentication through /graphql: register, login, rate limits, access tokens, refresh tokens, logout."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from db.models import user_table
from tests.conftest import GQL, REGISTER, User, pk_of

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { token refreshToken user { id username email } }
}
"""

REFRESH = """
mutation Refresh($refreshToken: String!) {
  refreshToken(refreshToken: $refreshToken) { token refreshToken user { id username email } }
}
"""

LOGOUT = "mutation Logout($refreshToken: String) { logout(refreshToken: $refreshToken) }"

VIEWER = "{ viewer { id username email } }"

UPDATE_VIEWER = """
mutation Update($input: UpdateViewerInput!) { updateViewer(input: $input) { username } }
"""

USER_BY_NAME = "query U($username: String!) { user(username: $username) { id username } }"

LOGIN_FAILED = "email or password is invalid"


def b64url(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def claims_for(user: User, **overrides: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": str(pk_of(user.id)),
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "role": "USER",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


async def register(gql: GQL, username: str, email: str, password: str) -> Any:
    return await gql(REGISTER, {"input": {"username": username, "email": email, "password": password}})


async def login(gql: GQL, email: str, password: str) -> Any:
    return await gql(LOGIN, {"input": {"email": email, "password": password}})


def assert_unauthenticated_401(response: Any) -> None:
    assert response.status == 401, response.body
    assert response.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in response.body


# --- register -------------------------------------------------------------------------------


async def test_register_returns_tokens_and_the_user_with_own_email(gql: GQL) -> None:
    response = await register(gql, "carol", "carol@example.com", "password123")
    assert response.status == 200
    assert not response.errors
    payload = response.data["register"]
    assert payload["token"]
    assert payload["refreshToken"]
    assert payload["user"]["username"] == "carol"
    assert payload["user"]["email"] == "carol@example.com"
    assert payload["user"]["role"] == "USER"
    viewer = await gql.ok(VIEWER, token=payload["token"])
    assert viewer["viewer"] == {"id": payload["user"]["id"], "username": "carol", "email": "carol@example.com"}


@pytest.mark.parametrize(
    ("username", "email", "password", "fields"),
    [
        ("", "carol@example.com", "password123", {"username": ["can't be empty"]}),
        ("carol", "", "password123", {"email": ["can't be empty"]}),
        ("carol", "carol@example.com", "", {"password": ["can't be empty"]}),
        ("c" * 33, "carol@example.com", "password123", {"username": ["is too long"]}),
        ("carol smith", "carol@example.com", "password123", {"username": ["is invalid"]}),
        ("carol!", "carol@example.com", "password123", {"username": ["is invalid"]}),
        ("carol", "not-an-email", "password123", {"email": ["is invalid"]}),
        ("carol", "carol@example", "password123", {"email": ["is invalid"]}),
        ("carol", "carol@example.com", "pass123", {"password": ["is too short"]}),
    ],
)
async def test_register_validation(
    gql: GQL, username: str, email: str, password: str, fields: dict[str, list[str]]
) -> None:
    response = await register(gql, username, email, password)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == fields
    assert response.data is None
    assert (await gql.ok(USER_BY_NAME, {"username": username}))["user"] is None


async def test_register_reports_every_invalid_field_at_once(gql: GQL) -> None:
    response = await register(gql, "", "", "")
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {
        "username": ["can't be empty"],
        "email": ["can't be empty"],
        "password": ["can't be empty"],
    }


async def test_register_accepts_a_32_character_username(gql: GQL) -> None:
    response = await register(gql, "c" * 32, "long@example.com", "password123")
    assert not response.errors
    assert response.data["register"]["user"]["username"] == "c" * 32


@pytest.mark.parametrize(
    "username",
    ["x'; DROP TABLE user;--", 'a" OR "1"="1', "bob'--", "<script>x</script>"],
)
async def test_register_injection_like_username_is_invalid_and_stores_nothing(
    gql: GQL, alice: User, username: str
) -> None:
    response = await register(gql, username, "mallory@example.com", "password123")
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"username": ["is invalid"]}
    assert (await gql.ok(USER_BY_NAME, {"username": username}))["user"] is None
    # the user table is intact and the email was not taken
    assert (await gql.ok(USER_BY_NAME, {"username": "alice"}))["user"]["username"] == "alice"
    again = await register(gql, "mallory", "mallory@example.com", "password123")
    assert not again.errors
    assert (await login(gql, "mallory@example.com", "password123")).data["login"]["user"]["username"] == "mallory"


async def test_register_duplicate_username_is_taken(gql: GQL, alice: User) -> None:
    response = await register(gql, "alice", "other@example.com", "password123")
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"username": ["has already been taken"]}


async def test_usernames_are_case_sensitive(gql: GQL, alice: User) -> None:
    response = await register(gql, "Alice", "other@example.com", "password123")
    assert not response.errors
    assert response.data["register"]["user"]["username"] == "Alice"


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@example.com", "Alice@Example.COM"])
async def test_register_duplicate_email_is_taken_case_insensitively(gql: GQL, alice: User, email: str) -> None:
    response = await register(gql, "alice2", email, "password123")
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"email": ["has already been taken"]}
    assert (await gql.ok(USER_BY_NAME, {"username": "alice2"}))["user"] is None


async def test_register_duplicate_username_and_email_reports_both(gql: GQL, alice: User) -> None:
    response = await register(gql, "alice", "ALICE@example.com", "password123")
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {
        "username": ["has already been taken"],
        "email": ["has already been taken"],
    }


async def test_register_never_echoes_the_password(gql: GQL) -> None:
    secret = "s3cr3t-value"
    response = await register(gql, "bad name", "carol@example.com", secret)
    assert response.codes == ["BAD_USER_INPUT"]
    assert secret not in json.dumps(response.body)


# --- login ----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.com"])
async def test_login_with_the_right_password_in_any_email_case(gql: GQL, alice: User, email: str) -> None:
    response = await login(gql, email, alice.password)
    assert response.status == 200
    assert not response.errors
    payload = response.data["login"]
    assert payload["user"] == {"id": alice.id, "username": "alice", "email": "alice@example.com"}
    assert payload["refreshToken"]
    viewer = await gql.ok(VIEWER, token=payload["token"])
    assert viewer["viewer"]["username"] == "alice"


async def test_login_wrong_password_is_unauthenticated(gql: GQL, alice: User) -> None:
    response = await login(gql, alice.email, "wrong-password")
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.errors[0]["message"] == LOGIN_FAILED
    assert response.data is None


async def test_login_unknown_email_is_unauthenticated_with_the_same_message(gql: GQL, alice: User) -> None:
    response = await login(gql, "nobody@example.com", alice.password)
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.errors[0]["message"] == LOGIN_FAILED
    assert response.data is None


async def test_login_rate_limit_per_email(gql: GQL, alice: User, bob: User) -> None:
    for _ in range(10):
        failed = await login(gql, alice.email, "wrong-password")
        assert failed.codes == ["UNAUTHENTICATED"]
    limited = await login(gql, alice.email, alice.password)
    assert limited.codes == ["RATE_LIMITED"]
    retry_after = limited.errors[0]["extensions"]["retryAfter"]
    assert isinstance(retry_after, int) and not isinstance(retry_after, bool)
    assert retry_after > 0
    assert limited.data is None
    # the limit is per email: another email still logs in
    assert not (await login(gql, bob.email, bob.password)).errors


async def test_login_rate_limit_counts_emails_case_insensitively(gql: GQL, alice: User) -> None:
    for index in range(10):
        email = alice.email.upper() if index % 2 else alice.email
        assert (await login(gql, email, "wrong-password")).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, alice.email, alice.password)).codes == ["RATE_LIMITED"]


async def test_nine_failures_do_not_lock_the_account(gql: GQL, alice: User) -> None:
    for _ in range(9):
        assert (await login(gql, alice.email, "wrong-password")).codes == ["UNAUTHENTICATED"]
    assert not (await login(gql, alice.email, alice.password)).errors


# --- access tokens --------------------------------------------------------------------------


async def test_token_signed_with_another_key_is_401(gql: GQL, alice: User) -> None:
    token = jwt.encode(claims_for(alice), "another-secret-" + "y" * 40, algorithm="HS256")
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_token_with_alg_none_is_401(gql: GQL, alice: User) -> None:
    token = jwt.encode(claims_for(alice), None, algorithm="none")
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_hand_built_unsigned_token_is_401(gql: GQL, alice: User) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(claims_for(alice))}."
        assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_token_with_another_algorithm_is_401(gql: GQL, app: Any, alice: User) -> None:
    token = jwt.encode(claims_for(alice), app.state.conduit.tokens.secret, algorithm="HS384")
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_expired_token_is_401(gql: GQL, app: Any, alice: User) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = app.state.conduit.tokens.issue_access_token(pk_of(alice.id), "USER", now=past)
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_fresh_token_from_the_token_service_works(gql: GQL, app: Any, alice: User) -> None:
    # the control for the expired-token test: the same construction, issued now, is accepted
    token = app.state.conduit.tokens.issue_access_token(pk_of(alice.id), "USER")
    assert (await gql.ok(VIEWER, token=token))["viewer"]["username"] == "alice"


async def test_token_without_exp_is_401(gql: GQL, app: Any, alice: User) -> None:
    token = jwt.encode(claims_for(alice, exp=None), app.state.conduit.tokens.secret, algorithm="HS256")
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_token_without_sub_is_401(gql: GQL, app: Any, alice: User) -> None:
    token = jwt.encode(claims_for(alice, sub=None), app.state.conduit.tokens.secret, algorithm="HS256")
    assert_unauthenticated_401(await gql(VIEWER, token=token))


async def test_token_of_a_deleted_user_is_401(gql: GQL, app: Any, alice: User) -> None:
    assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["username"] == "alice"
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.delete(user_table).where(user_table.c.id == pk_of(alice.id)))
    assert_unauthenticated_401(await gql(VIEWER, token=alice.token))


async def test_bad_token_on_a_mutation_is_401_and_runs_nothing(gql: GQL, alice: User) -> None:
    token = jwt.encode(claims_for(alice), "another-secret-" + "y" * 40, algorithm="HS256")
    response = await gql(UPDATE_VIEWER, {"input": {"bio": "hacked"}}, token=token)
    assert_unauthenticated_401(response)
    data = await gql.ok('{ user(username: "alice") { bio } }')
    assert data["user"]["bio"] is None


# --- refresh tokens -------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(gql: GQL, alice: User) -> None:
    response = await gql(REFRESH, {"refreshToken": alice.refresh_token})
    assert not response.errors
    payload = response.data["refreshToken"]
    assert payload["refreshToken"] != alice.refresh_token
    assert payload["user"] == {"id": alice.id, "username": "alice", "email": "alice@example.com"}
    assert (await gql.ok(VIEWER, token=payload["token"]))["viewer"]["username"] == "alice"
    # the new refresh token works in turn
    again = await gql(REFRESH, {"refreshToken": payload["refreshToken"]})
    assert not again.errors
    assert again.data["refreshToken"]["user"]["username"] == "alice"


async def test_old_refresh_token_stops_working(gql: GQL, alice: User) -> None:
    await gql.ok(REFRESH, {"refreshToken": alice.refresh_token})
    response = await gql(REFRESH, {"refreshToken": alice.refresh_token})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None


async def test_reusing_a_spent_refresh_token_revokes_the_family(gql: GQL, alice: User) -> None:
    first = (await gql.ok(REFRESH, {"refreshToken": alice.refresh_token}))["refreshToken"]
    second = (await gql.ok(REFRESH, {"refreshToken": first["refreshToken"]}))["refreshToken"]
    # the original, already used, comes back: theft detected
    reused = await gql(REFRESH, {"refreshToken": alice.refresh_token})
    assert reused.codes == ["UNAUTHENTICATED"]
    # so the newest token of that family no longer works either
    newest = await gql(REFRESH, {"refreshToken": second["refreshToken"]})
    assert newest.codes == ["UNAUTHENTICATED"]


async def test_family_revocation_leaves_other_sessions_alone(gql: GQL, alice: User) -> None:
    other = (await login(gql, alice.email, alice.password)).data["login"]
    await gql.ok(REFRESH, {"refreshToken": alice.refresh_token})
    assert (await gql(REFRESH, {"refreshToken": alice.refresh_token})).codes == ["UNAUTHENTICATED"]
    # a separate login is a separate family
    assert not (await gql(REFRESH, {"refreshToken": other["refreshToken"]})).errors


@pytest.mark.parametrize("token", ["not-a-real-token", "", "x" * 43])
async def test_unknown_refresh_token_is_unauthenticated(gql: GQL, alice: User, token: str) -> None:
    response = await gql(REFRESH, {"refreshToken": token})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None


async def test_access_token_is_not_a_refresh_token(gql: GQL, alice: User) -> None:
    response = await gql(REFRESH, {"refreshToken": alice.token})
    assert response.codes == ["UNAUTHENTICATED"]


# --- logout ---------------------------------------------------------------------------------


async def test_logout_revokes_only_the_given_token(gql: GQL, alice: User) -> None:
    other = (await login(gql, alice.email, alice.password)).data["login"]
    response = await gql(LOGOUT, {"refreshToken": alice.refresh_token}, alice.token)
    assert response.status == 200
    assert response.data == {"logout": True}
    assert (await gql(REFRESH, {"refreshToken": alice.refresh_token})).codes == ["UNAUTHENTICATED"]
    # the other session's refresh token still works
    assert not (await gql(REFRESH, {"refreshToken": other["refreshToken"]})).errors


async def test_logout_twice_returns_false_the_second_time(gql: GQL, alice: User) -> None:
    assert await gql.ok(LOGOUT, {"refreshToken": alice.refresh_token}, alice.token) == {"logout": True}
    assert await gql.ok(LOGOUT, {"refreshToken": alice.refresh_token}, alice.token) == {"logout": False}


async def test_logout_of_another_users_token_returns_false_and_leaves_it(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(LOGOUT, {"refreshToken": bob.refresh_token}, alice.token)
    assert response.status == 200
    assert response.data == {"logout": False}
    refreshed = await gql(REFRESH, {"refreshToken": bob.refresh_token})
    assert not refreshed.errors
    assert refreshed.data["refreshToken"]["user"]["username"] == "bob"


async def test_logout_without_argument_revokes_all_of_the_viewers_tokens(gql: GQL, alice: User, bob: User) -> None:
    second = (await login(gql, alice.email, alice.password)).data["login"]
    assert await gql.ok(LOGOUT, None, alice.token) == {"logout": True}
    for token in (alice.refresh_token, second["refreshToken"]):
        assert (await gql(REFRESH, {"refreshToken": token})).codes == ["UNAUTHENTICATED"]
    # bob's tokens are untouched
    assert not (await gql(REFRESH, {"refreshToken": bob.refresh_token})).errors
    # nothing left to revoke
    assert await gql.ok(LOGOUT, None, alice.token) == {"logout": False}


async def test_logout_anonymous_is_unauthenticated(gql: GQL, alice: User) -> None:
    response = await gql(LOGOUT, {"refreshToken": alice.refresh_token})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None
    # and the token was not revoked
    assert not (await gql(REFRESH, {"refreshToken": alice.refresh_token})).errors


# --- password change ------------------------------------------------------------------------


async def test_password_change_revokes_refresh_tokens_and_swaps_the_password(gql: GQL, alice: User) -> None:
    second = (await login(gql, alice.email, alice.password)).data["login"]
    data = await gql.ok(UPDATE_VIEWER, {"input": {"password": "new-password-456"}}, alice.token)
    assert data["updateViewer"]["username"] == "alice"
    for token in (alice.refresh_token, second["refreshToken"]):
        assert (await gql(REFRESH, {"refreshToken": token})).codes == ["UNAUTHENTICATED"]
    old = await login(gql, alice.email, alice.password)
    assert old.codes == ["UNAUTHENTICATED"]
    assert old.errors[0]["message"] == LOGIN_FAILED
    new = await login(gql, alice.email, "new-password-456")
    assert not new.errors
    assert new.data["login"]["user"]["username"] == "alice"
    # the session opened after the change can refresh
    assert not (await gql(REFRESH, {"refreshToken": new.data["login"]["refreshToken"]})).errors


async def test_too_short_new_password_is_refused_and_changes_nothing(gql: GQL, alice: User) -> None:
    response = await gql(UPDATE_VIEWER, {"input": {"password": "short"}}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"password": ["is too short"]}
    assert not (await login(gql, alice.email, alice.password)).errors
    assert not (await gql(REFRESH, {"refreshToken": alice.refresh_token})).errors


async def test_expired_rate_limit_events_are_pruned(app: Any) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from auth import ratelimit
    from db.models import rate_limit_event_table as events

    db = app.state.conduit.db
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    async with db.engine.begin() as connection:
        await connection.execute(sa.insert(events), [{"bucket": "login:addr:old", "created_at": old}] * 5)
    session = db.session()
    async with db.transaction(session):
        await ratelimit.record(session, "login:addr:new")
        await ratelimit.prune(session)
    await session.close()
    async with db.engine.connect() as connection:
        buckets = [row[0] for row in await connection.execute(sa.select(events.c.bucket))]
    assert buckets == ["login:addr:new"]


def test_the_cheapest_hash_profile_is_refused_outside_tests() -> None:
    import pydantic

    from graph.settings import Settings

    with pytest.raises(pydantic.ValidationError, match="test only"):
        Settings(env="production", jwt_secret="x" * 40, password_hash_profile="cheapest")
    with pytest.raises(pydantic.ValidationError, match="test only"):
        Settings(env="development", password_hash_profile="cheapest")
    assert Settings(env="test", password_hash_profile="cheapest").password_hash_profile == "cheapest"
