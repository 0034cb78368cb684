"""Users through /graphql: viewer, profiles, email visibility, follows, updateViewer, roles, node lookup."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import GQL, User, Users, set_role

PROFILE = """
query Profile($username: String!) {
  user(username: $username) {
    id username bio image email role following followersCount followingCount createdAt
  }
}
"""

VIEWER = "{ viewer { id username email role } }"

FOLLOW = """
mutation Follow($username: String!) {
  followUser(username: $username) { username following followersCount followingCount }
}
"""

UNFOLLOW = """
mutation Unfollow($username: String!) {
  unfollowUser(username: $username) { username following followersCount followingCount }
}
"""

UPDATE_VIEWER = """
mutation Update($input: UpdateViewerInput!) {
  updateViewer(input: $input) { id username bio image email }
}
"""

SET_ROLE = """
mutation SetRole($username: String!, $role: Role!) {
  setUserRole(username: $username, role: $role) { username role }
}
"""

NODE = "query N($id: ID!) { node(id: $id) { __typename id ... on User { username } } }"

NODES = "query N($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on User { username } } }"


async def profile(gql: GQL, username: str, token: str | None = None) -> Any:
    return (await gql.ok(PROFILE, {"username": username}, token))["user"]


# --- viewer and user(username:) -------------------------------------------------------------


async def test_viewer_is_null_for_anonymous(gql: GQL, alice: User) -> None:
    response = await gql(VIEWER)
    assert response.status == 200
    assert response.body == {"data": {"viewer": None}}


async def test_viewer_is_the_authenticated_user(gql: GQL, alice: User, bob: User) -> None:
    data = await gql.ok(VIEWER, token=alice.token)
    assert data["viewer"] == {"id": alice.id, "username": "alice", "email": "alice@example.com", "role": "USER"}
    data = await gql.ok(VIEWER, token=bob.token)
    assert data["viewer"]["username"] == "bob"


async def test_user_by_username(gql: GQL, alice: User) -> None:
    user = await profile(gql, "alice")
    assert user["id"] == alice.id
    assert user["username"] == "alice"
    assert user["bio"] is None
    assert user["image"] is None
    assert user["role"] == "USER"
    assert user["following"] is False
    assert user["followersCount"] == 0
    assert user["followingCount"] == 0
    assert user["createdAt"].endswith("+00:00")


async def test_unknown_user_is_null(gql: GQL, alice: User) -> None:
    response = await gql(PROFILE, {"username": "nobody"})
    assert response.status == 200
    assert response.body == {"data": {"user": None}}


async def test_username_lookup_is_case_sensitive(gql: GQL, alice: User) -> None:
    assert (await gql.ok(PROFILE, {"username": "ALICE"}))["user"] is None


# --- email visibility -----------------------------------------------------------------------


async def test_email_is_visible_to_the_user_themself(gql: GQL, alice: User) -> None:
    assert (await profile(gql, "alice", alice.token))["email"] == "alice@example.com"


async def test_email_is_null_for_other_users(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(PROFILE, {"username": "alice"}, bob.token)
    assert not response.errors
    assert response.data["user"]["email"] is None
    assert response.data["user"]["username"] == "alice"


async def test_email_is_null_for_anonymous(gql: GQL, alice: User) -> None:
    response = await gql(PROFILE, {"username": "alice"})
    assert not response.errors
    assert response.data["user"]["email"] is None


async def test_email_is_visible_to_an_admin(gql: GQL, app: Any, alice: User, bob: User) -> None:
    assert (await profile(gql, "alice", bob.token))["email"] is None
    await set_role(app, "bob", "ADMIN")
    assert (await profile(gql, "alice", bob.token))["email"] == "alice@example.com"


async def test_email_is_not_visible_to_a_moderator(gql: GQL, app: Any, alice: User, bob: User) -> None:
    await set_role(app, "bob", "MODERATOR")
    assert (await profile(gql, "alice", bob.token))["email"] is None


async def test_email_in_follow_payload_is_hidden_from_the_follower(gql: GQL, alice: User, bob: User) -> None:
    data = await gql.ok(
        "mutation F($username: String!) { followUser(username: $username) { email } }", {"username": "alice"}, bob.token
    )
    assert data["followUser"]["email"] is None


# --- follow / unfollow ----------------------------------------------------------------------


async def test_follow_and_unfollow(gql: GQL, alice: User, bob: User) -> None:
    followed = (await gql.ok(FOLLOW, {"username": "alice"}, bob.token))["followUser"]
    assert followed == {"username": "alice", "following": True, "followersCount": 1, "followingCount": 0}
    assert (await profile(gql, "alice", bob.token))["following"] is True
    assert (await profile(gql, "bob", bob.token))["followingCount"] == 1
    # following is per viewer
    assert (await profile(gql, "alice", alice.token))["following"] is False
    assert (await profile(gql, "alice"))["following"] is False
    assert (await profile(gql, "alice"))["followersCount"] == 1

    unfollowed = (await gql.ok(UNFOLLOW, {"username": "alice"}, bob.token))["unfollowUser"]
    assert unfollowed == {"username": "alice", "following": False, "followersCount": 0, "followingCount": 0}
    assert (await profile(gql, "alice", bob.token))["following"] is False
    assert (await profile(gql, "bob"))["followingCount"] == 0


async def test_follow_twice_is_idempotent(gql: GQL, alice: User, bob: User) -> None:
    await gql.ok(FOLLOW, {"username": "alice"}, bob.token)
    again = await gql(FOLLOW, {"username": "alice"}, bob.token)
    assert not again.errors
    assert again.data["followUser"] == {
        "username": "alice",
        "following": True,
        "followersCount": 1,
        "followingCount": 0,
    }


async def test_unfollow_twice_is_idempotent(gql: GQL, alice: User, bob: User) -> None:
    await gql.ok(FOLLOW, {"username": "alice"}, bob.token)
    await gql.ok(UNFOLLOW, {"username": "alice"}, bob.token)
    again = await gql(UNFOLLOW, {"username": "alice"}, bob.token)
    assert not again.errors
    assert again.data["unfollowUser"]["following"] is False
    assert again.data["unfollowUser"]["followersCount"] == 0


async def test_unfollow_someone_never_followed_is_not_an_error(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(UNFOLLOW, {"username": "alice"}, bob.token)
    assert not response.errors
    assert response.data["unfollowUser"]["following"] is False


async def test_follow_counts_with_several_followers(gql: GQL, users: Users, alice: User, bob: User) -> None:
    carol = await users.register("carol")
    await gql.ok(FOLLOW, {"username": "alice"}, bob.token)
    await gql.ok(FOLLOW, {"username": "alice"}, carol.token)
    await gql.ok(FOLLOW, {"username": "bob"}, alice.token)
    alice_profile = await profile(gql, "alice", carol.token)
    assert alice_profile["followersCount"] == 2
    assert alice_profile["followingCount"] == 1
    assert alice_profile["following"] is True
    bob_profile = await profile(gql, "bob", carol.token)
    assert bob_profile["followersCount"] == 1
    assert bob_profile["followingCount"] == 1
    assert bob_profile["following"] is False


@pytest.mark.parametrize("mutation", [FOLLOW, UNFOLLOW])
async def test_follow_unknown_user_is_not_found(gql: GQL, bob: User, mutation: str) -> None:
    response = await gql(mutation, {"username": "nobody"}, bob.token)
    assert response.codes == ["NOT_FOUND"]
    assert response.data is None


async def test_following_oneself_is_bad_user_input(gql: GQL, alice: User) -> None:
    response = await gql(FOLLOW, {"username": "alice"}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    fields = response.error_fields()
    assert list(fields) == ["username"]
    assert fields["username"] and all(isinstance(message, str) for message in fields["username"])
    assert response.data is None
    me = await profile(gql, "alice", alice.token)
    assert me["followersCount"] == 0
    assert me["followingCount"] == 0
    assert me["following"] is False


@pytest.mark.parametrize("mutation", [FOLLOW, UNFOLLOW])
async def test_follow_anonymous_is_unauthenticated(gql: GQL, alice: User, mutation: str) -> None:
    response = await gql(mutation, {"username": "alice"})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None
    assert (await profile(gql, "alice"))["followersCount"] == 0


# --- updateViewer ---------------------------------------------------------------------------


async def test_update_bio_and_image(gql: GQL, alice: User) -> None:
    image = "https://example.com/alice.png"
    data = await gql.ok(UPDATE_VIEWER, {"input": {"bio": "I write things", "image": image}}, alice.token)
    assert data["updateViewer"] == {
        "id": alice.id,
        "username": "alice",
        "bio": "I write things",
        "image": image,
        "email": "alice@example.com",
    }
    user = await profile(gql, "alice")
    assert user["bio"] == "I write things"
    assert user["image"] == image


async def test_update_accepts_an_http_image(gql: GQL, alice: User) -> None:
    data = await gql.ok(UPDATE_VIEWER, {"input": {"image": "http://example.com/a.jpg"}}, alice.token)
    assert data["updateViewer"]["image"] == "http://example.com/a.jpg"


async def test_update_leaves_omitted_fields_alone(gql: GQL, alice: User) -> None:
    await gql.ok(UPDATE_VIEWER, {"input": {"bio": "first", "image": "https://example.com/a.png"}}, alice.token)
    data = await gql.ok(UPDATE_VIEWER, {"input": {"bio": "second"}}, alice.token)
    assert data["updateViewer"]["bio"] == "second"
    assert data["updateViewer"]["image"] == "https://example.com/a.png"


async def test_update_username(gql: GQL, alice: User) -> None:
    data = await gql.ok(UPDATE_VIEWER, {"input": {"username": "alicia"}}, alice.token)
    assert data["updateViewer"]["username"] == "alicia"
    assert data["updateViewer"]["id"] == alice.id
    assert (await gql.ok(PROFILE, {"username": "alice"}))["user"] is None
    assert (await profile(gql, "alicia"))["id"] == alice.id
    # the same access token still names the same user
    assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["username"] == "alicia"


async def test_update_username_to_own_username_is_allowed(gql: GQL, alice: User) -> None:
    data = await gql.ok(UPDATE_VIEWER, {"input": {"username": "alice"}}, alice.token)
    assert data["updateViewer"]["username"] == "alice"


async def test_update_username_taken(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(UPDATE_VIEWER, {"input": {"username": "bob", "bio": "new bio"}}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"username": ["has already been taken"]}
    assert response.data is None
    me = await profile(gql, "alice", alice.token)
    assert me["username"] == "alice"
    assert me["bio"] is None
    assert (await profile(gql, "bob"))["id"] == bob.id


async def test_update_email_taken_case_insensitively(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(UPDATE_VIEWER, {"input": {"email": "BOB@example.com"}}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"email": ["has already been taken"]}
    assert (await profile(gql, "alice", alice.token))["email"] == "alice@example.com"


@pytest.mark.parametrize(
    ("field_input", "fields"),
    [
        ({"image": "ftp://example.com/a.png"}, {"image": ["is invalid"]}),
        ({"image": "javascript:alert(1)"}, {"image": ["is invalid"]}),
        ({"image": "not a url"}, {"image": ["is invalid"]}),
        ({"bio": "b" * 1001}, {"bio": ["is too long"]}),
        ({"username": "a" * 33}, {"username": ["is too long"]}),
        ({"username": "bad name"}, {"username": ["is invalid"]}),
        ({"username": ""}, {"username": ["can't be empty"]}),
        ({"email": "nope"}, {"email": ["is invalid"]}),
    ],
)
async def test_update_validation(
    gql: GQL, alice: User, field_input: dict[str, str], fields: dict[str, list[str]]
) -> None:
    response = await gql(UPDATE_VIEWER, {"input": field_input}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == fields
    assert response.data is None


async def test_bio_of_exactly_1000_characters_is_accepted(gql: GQL, alice: User) -> None:
    data = await gql.ok(UPDATE_VIEWER, {"input": {"bio": "b" * 1000}}, alice.token)
    assert data["updateViewer"]["bio"] == "b" * 1000


async def test_failing_update_changes_nothing(gql: GQL, alice: User) -> None:
    image = "https://example.com/alice.png"
    await gql.ok(UPDATE_VIEWER, {"input": {"bio": "original", "image": image}}, alice.token)
    before = await profile(gql, "alice", alice.token)
    response = await gql(
        UPDATE_VIEWER,
        {"input": {"username": "alicia", "bio": "b" * 1001, "image": "ftp://example.com/x.png"}},
        alice.token,
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"bio": ["is too long"], "image": ["is invalid"]}
    assert (await gql.ok(PROFILE, {"username": "alicia"}))["user"] is None
    assert await profile(gql, "alice", alice.token) == before


async def test_failing_update_with_valid_fields_and_a_taken_username_changes_nothing(
    gql: GQL, alice: User, bob: User
) -> None:
    before = await profile(gql, "alice", alice.token)
    response = await gql(
        UPDATE_VIEWER,
        {
            "input": {
                "username": "bob",
                "bio": "fine",
                "image": "https://example.com/fine.png",
                "email": "new@example.com",
            }
        },
        alice.token,
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.error_fields() == {"username": ["has already been taken"]}
    assert await profile(gql, "alice", alice.token) == before


async def test_update_viewer_anonymous_is_unauthenticated(gql: GQL, alice: User) -> None:
    response = await gql(UPDATE_VIEWER, {"input": {"bio": "x"}})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None
    assert (await profile(gql, "alice"))["bio"] is None


# --- roles ----------------------------------------------------------------------------------


async def test_admin_sets_a_role(gql: GQL, app: Any, alice: User, bob: User) -> None:
    await set_role(app, "alice", "ADMIN")
    data = await gql.ok(SET_ROLE, {"username": "bob", "role": "MODERATOR"}, alice.token)
    assert data["setUserRole"] == {"username": "bob", "role": "MODERATOR"}
    assert (await profile(gql, "bob"))["role"] == "MODERATOR"
    assert (await gql.ok(VIEWER, token=bob.token))["viewer"]["role"] == "MODERATOR"


async def test_user_may_not_set_roles(gql: GQL, alice: User, bob: User) -> None:
    response = await gql(SET_ROLE, {"username": "alice", "role": "ADMIN"}, alice.token)
    assert response.codes == ["FORBIDDEN"]
    assert response.data is None
    assert (await profile(gql, "alice"))["role"] == "USER"


async def test_moderator_may_not_set_roles(gql: GQL, app: Any, alice: User, bob: User) -> None:
    await set_role(app, "alice", "MODERATOR")
    response = await gql(SET_ROLE, {"username": "bob", "role": "ADMIN"}, alice.token)
    assert response.codes == ["FORBIDDEN"]
    assert (await profile(gql, "bob"))["role"] == "USER"


async def test_anonymous_may_not_set_roles(gql: GQL, bob: User) -> None:
    response = await gql(SET_ROLE, {"username": "bob", "role": "ADMIN"})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None
    assert (await profile(gql, "bob"))["role"] == "USER"


async def test_set_role_of_unknown_user_is_not_found(gql: GQL, app: Any, alice: User) -> None:
    await set_role(app, "alice", "ADMIN")
    response = await gql(SET_ROLE, {"username": "nobody", "role": "ADMIN"}, alice.token)
    assert response.codes == ["NOT_FOUND"]
    assert response.data is None


async def test_demotion_takes_effect_at_once(gql: GQL, app: Any, alice: User, bob: User) -> None:
    await set_role(app, "alice", "ADMIN")
    await gql.ok(SET_ROLE, {"username": "bob", "role": "MODERATOR"}, alice.token)
    await set_role(app, "alice", "USER")
    # the same access token (whose role claim still says ADMIN) is no longer enough
    response = await gql(SET_ROLE, {"username": "bob", "role": "ADMIN"}, alice.token)
    assert response.codes == ["FORBIDDEN"]
    assert (await profile(gql, "bob"))["role"] == "MODERATOR"
    assert (await gql.ok(VIEWER, token=alice.token))["viewer"]["role"] == "USER"


async def test_admin_demoting_another_admin_takes_effect_at_once(gql: GQL, app: Any, alice: User, bob: User) -> None:
    await set_role(app, "alice", "ADMIN")
    await set_role(app, "bob", "ADMIN")
    await gql.ok(SET_ROLE, {"username": "alice", "role": "USER"}, bob.token)
    response = await gql(SET_ROLE, {"username": "bob", "role": "USER"}, alice.token)
    assert response.codes == ["FORBIDDEN"]
    assert (await profile(gql, "bob"))["role"] == "ADMIN"
    # and alice no longer sees other users' email
    assert (await profile(gql, "bob", alice.token))["email"] is None


# --- node / nodes ---------------------------------------------------------------------------


async def test_node_returns_a_user_by_global_id(gql: GQL, alice: User) -> None:
    data = await gql.ok(NODE, {"id": alice.id})
    assert data["node"] == {"__typename": "User", "id": alice.id, "username": "alice"}


async def test_nodes_returns_users_in_order(gql: GQL, alice: User, bob: User) -> None:
    data = await gql.ok(NODES, {"ids": [bob.id, alice.id]})
    assert data["nodes"] == [
        {"__typename": "User", "id": bob.id, "username": "bob"},
        {"__typename": "User", "id": alice.id, "username": "alice"},
    ]


def missing_user_id() -> str:
    return base64.b64encode(b"User:999999").decode()


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-an-id",
        "",
        "!!!",
        base64.b64encode(b"Nothing:1").decode(),
        base64.b64encode(b"User:abc").decode(),
        missing_user_id(),
    ],
)
async def test_node_with_an_invalid_id_is_null(gql: GQL, alice: User, bad_id: str) -> None:
    response = await gql(NODE, {"id": bad_id})
    assert response.status == 200
    assert response.data == {"node": None}


async def test_nodes_gives_null_for_invalid_ids_in_place(gql: GQL, alice: User, bob: User) -> None:
    data = await gql.ok(NODES, {"ids": [alice.id, "not-an-id", missing_user_id(), bob.id]})
    assert data["nodes"] == [
        {"__typename": "User", "id": alice.id, "username": "alice"},
        None,
        None,
        {"__typename": "User", "id": bob.id, "username": "bob"},
    ]


async def test_node_user_email_follows_the_visibility_rule(gql: GQL, alice: User, bob: User) -> None:
    query = "query N($id: ID!) { node(id: $id) { ... on User { email } } }"
    assert (await gql.ok(query, {"id": alice.id}, alice.token))["node"]["email"] == "alice@example.com"
    assert (await gql.ok(query, {"id": alice.id}, bob.token))["node"]["email"] is None
    assert (await gql.ok(query, {"id": alice.id}))["node"]["email"] is None
