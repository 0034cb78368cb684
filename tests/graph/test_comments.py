"""Comments: addComment, Article.comments, deleteComment, Comment.article, node and nodes.

Everything goes through the real /graphql endpoint; the only out-of-band setup is ``set_role``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import GQL, Response, User, Users, create_article, set_role

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")

ADD = """
mutation C($slug: String!, $body: String!) {
  addComment(slug: $slug, body: $body) {
    id body createdAt updatedAt author { id username } article { id slug title }
  }
}
"""

DELETE = "mutation D($id: ID!) { deleteComment(id: $id) }"

COMMENTS = """
query C($slug: String!, $first: Int, $after: String) {
  article(slug: $slug) {
    comments(first: $first, after: $after) {
      totalCount
      edges { cursor node { id body author { username } } }
      nodes { id }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""

NODE = """
query N($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Comment { body createdAt author { username } article { slug title author { username } } }
  }
}
"""

NODES = """
query N($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Article { slug }
    ... on Comment { body }
    ... on User { username }
  }
}
"""


def expect_error(response: Response, code: str) -> None:
    """An execution error with one GraphQL error of ``code``."""
    assert response.status == 200, response.body
    assert response.codes == [code], response.body


async def add(gql: GQL, user: User, slug: str, body: str) -> dict[str, Any]:
    comment: dict[str, Any] = (await gql.ok(ADD, {"slug": slug, "body": body}, user.token))["addComment"]
    return comment


async def comments(gql: GQL, slug: str, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await gql.ok(COMMENTS, {"slug": slug, **variables}))["article"]["comments"]
    return connection


def bodies(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["body"] for edge in connection["edges"]]


@pytest.fixture
async def article(gql: GQL, alice: User) -> dict[str, Any]:
    return await create_article(gql, alice, "Discussed")


# --- addComment ------------------------------------------------------------------------------


async def test_add_comment_returns_the_comment(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "First!")
    assert comment["id"]
    assert comment["body"] == "First!"
    assert comment["author"] == {"id": bob.id, "username": "bob"}
    assert comment["article"] == {"id": article["id"], "slug": article["slug"], "title": "Discussed"}
    assert DATETIME.match(comment["createdAt"]), comment["createdAt"]
    assert DATETIME.match(comment["updatedAt"]), comment["updatedAt"]
    connection = await comments(gql, article["slug"])
    assert connection["totalCount"] == 1
    assert connection["edges"][0]["node"] == {"id": comment["id"], "body": "First!", "author": {"username": "bob"}}


async def test_author_of_the_article_may_comment_too(gql: GQL, article: dict[str, Any], alice: User) -> None:
    comment = await add(gql, alice, article["slug"], "Thanks for reading")
    assert comment["author"]["username"] == "alice"


@pytest.mark.parametrize("body", ["", " ", "  \n\t "])
async def test_empty_comment_is_bad_user_input(gql: GQL, article: dict[str, Any], bob: User, body: str) -> None:
    response = await gql(ADD, {"slug": article["slug"], "body": body}, bob.token)
    expect_error(response, "BAD_USER_INPUT")
    assert response.error_fields() == {"body": ["can't be empty"]}
    assert (await comments(gql, article["slug"]))["totalCount"] == 0


async def test_too_long_comment_is_bad_user_input(gql: GQL, article: dict[str, Any], bob: User) -> None:
    response = await gql(ADD, {"slug": article["slug"], "body": "c" * 10_001}, bob.token)
    expect_error(response, "BAD_USER_INPUT")
    fields = response.error_fields()
    assert list(fields) == ["body"], fields
    assert "is too long" in fields["body"]
    assert (await comments(gql, article["slug"]))["totalCount"] == 0


async def test_comment_at_the_limit_is_allowed(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "c" * 10_000)
    assert len(comment["body"]) == 10_000


async def test_comment_on_unknown_article_is_not_found(gql: GQL, bob: User) -> None:
    expect_error(await gql(ADD, {"slug": "no-such-article", "body": "hello"}, bob.token), "NOT_FOUND")


async def test_anonymous_comment_is_unauthenticated(gql: GQL, article: dict[str, Any]) -> None:
    response = await gql(ADD, {"slug": article["slug"], "body": "hello"})
    expect_error(response, "UNAUTHENTICATED")
    assert (await comments(gql, article["slug"]))["totalCount"] == 0


# --- Article.comments ------------------------------------------------------------------------


async def test_comments_are_oldest_first(gql: GQL, article: dict[str, Any], alice: User, bob: User) -> None:
    for user, body in [(bob, "one"), (alice, "two"), (bob, "three")]:
        await add(gql, user, article["slug"], body)
    connection = await comments(gql, article["slug"])
    assert bodies(connection) == ["one", "two", "three"]
    assert [e["node"]["author"]["username"] for e in connection["edges"]] == ["bob", "alice", "bob"]
    assert [n["id"] for n in connection["nodes"]] == [e["node"]["id"] for e in connection["edges"]]
    assert connection["totalCount"] == 3
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_comments_belong_to_their_article(gql: GQL, article: dict[str, Any], alice: User, bob: User) -> None:
    other = await create_article(gql, bob, "Elsewhere")
    await add(gql, bob, article["slug"], "here")
    await add(gql, alice, other["slug"], "there")
    assert bodies(await comments(gql, article["slug"])) == ["here"]
    assert bodies(await comments(gql, other["slug"])) == ["there"]


async def test_comments_paging_never_repeats_or_skips(gql: GQL, article: dict[str, Any], bob: User) -> None:
    expected = [f"comment {i}" for i in range(7)]
    for body in expected:
        await add(gql, bob, article["slug"], body)
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(10):
        page = await comments(gql, article["slug"], first=3, after=after)
        pages.append(page)
        seen.extend(bodies(page))
        assert page["totalCount"] == 7
        if page["edges"]:
            assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected
    assert [len(page["edges"]) for page in pages] == [3, 3, 1]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]


async def test_comments_first_zero_and_default(gql: GQL, article: dict[str, Any], bob: User) -> None:
    for i in range(22):
        await add(gql, bob, article["slug"], f"c{i}")
    default = await comments(gql, article["slug"])
    assert len(default["edges"]) == 20
    assert default["totalCount"] == 22
    assert default["pageInfo"]["hasNextPage"] is True
    rest = await comments(gql, article["slug"], after=default["pageInfo"]["endCursor"])
    assert bodies(rest) == ["c20", "c21"]
    empty = await comments(gql, article["slug"], first=0)
    assert empty["edges"] == [] and empty["totalCount"] == 22


async def test_comments_bad_cursor_is_bad_user_input(gql: GQL, article: dict[str, Any]) -> None:
    response = await gql(COMMENTS, {"slug": article["slug"], "after": "garbage"})
    assert response.codes == ["BAD_USER_INPUT"], response.body
    assert "after" in response.error_fields()


@pytest.mark.parametrize("first", [-1, 101])
async def test_comments_first_out_of_range_is_refused(gql: GQL, article: dict[str, Any], first: int) -> None:
    response = await gql(COMMENTS, {"slug": article["slug"], "first": first})
    assert response.errors, response.body
    assert set(response.codes) <= {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}, response.body


async def test_deleted_comment_disappears_from_the_list(gql: GQL, article: dict[str, Any], bob: User) -> None:
    ids = [(await add(gql, bob, article["slug"], body))["id"] for body in ("a", "b", "c")]
    await gql.ok(DELETE, {"id": ids[1]}, bob.token)
    connection = await comments(gql, article["slug"])
    assert bodies(connection) == ["a", "c"]
    assert connection["totalCount"] == 2


# --- deleteComment ---------------------------------------------------------------------------


async def test_comment_author_deletes_and_gets_the_id(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "oops")
    data = await gql.ok(DELETE, {"id": comment["id"]}, bob.token)
    assert data["deleteComment"] == comment["id"]
    assert (await gql.ok(NODE, {"id": comment["id"]}))["node"] is None
    assert (await comments(gql, article["slug"]))["totalCount"] == 0


async def test_another_user_cannot_delete_a_comment(
    gql: GQL, article: dict[str, Any], alice: User, bob: User, users: Users
) -> None:
    carol = await users.register("carol")
    comment = await add(gql, bob, article["slug"], "mine")
    expect_error(await gql(DELETE, {"id": comment["id"]}, carol.token), "FORBIDDEN")
    assert (await gql.ok(NODE, {"id": comment["id"]}))["node"]["body"] == "mine"
    assert (await comments(gql, article["slug"]))["totalCount"] == 1


async def test_article_author_is_not_a_moderator_of_its_comments(
    gql: GQL, article: dict[str, Any], alice: User, bob: User
) -> None:
    # Only the comment's author, a moderator or an admin may delete a comment.
    comment = await add(gql, bob, article["slug"], "critique")
    expect_error(await gql(DELETE, {"id": comment["id"]}, alice.token), "FORBIDDEN")
    assert (await comments(gql, article["slug"]))["totalCount"] == 1


@pytest.mark.parametrize("role", ["MODERATOR", "ADMIN"])
async def test_moderator_and_admin_may_delete_any_comment(
    gql: GQL, app: Any, article: dict[str, Any], bob: User, users: Users, role: str
) -> None:
    staff = await users.register("staff")
    comment = await add(gql, bob, article["slug"], "spam")
    await set_role(app, "staff", role)
    data = await gql.ok(DELETE, {"id": comment["id"]}, staff.token)
    assert data["deleteComment"] == comment["id"]
    assert (await gql.ok(NODE, {"id": comment["id"]}))["node"] is None


async def test_demoted_moderator_loses_the_power_at_once(
    gql: GQL, app: Any, article: dict[str, Any], bob: User, users: Users
) -> None:
    staff = await users.register("staff")
    comment = await add(gql, bob, article["slug"], "spam")
    await set_role(app, "staff", "MODERATOR")
    await set_role(app, "staff", "USER")
    expect_error(await gql(DELETE, {"id": comment["id"]}, staff.token), "FORBIDDEN")


async def test_anonymous_delete_comment_is_unauthenticated(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "stay")
    expect_error(await gql(DELETE, {"id": comment["id"]}), "UNAUTHENTICATED")
    assert (await comments(gql, article["slug"]))["totalCount"] == 1


@pytest.mark.parametrize("bad_id", ["nope", "", "!!!", "12"])
async def test_malformed_comment_id_is_bad_user_input(gql: GQL, bob: User, bad_id: str) -> None:
    response = await gql(DELETE, {"id": bad_id}, bob.token)
    expect_error(response, "BAD_USER_INPUT")
    assert "id" in response.error_fields()


async def test_deleting_a_deleted_comment_is_not_found(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "once")
    await gql.ok(DELETE, {"id": comment["id"]}, bob.token)
    expect_error(await gql(DELETE, {"id": comment["id"]}, bob.token), "NOT_FOUND")


async def test_comments_of_a_deleted_article_are_gone(
    gql: GQL, article: dict[str, Any], alice: User, bob: User
) -> None:
    comment = await add(gql, bob, article["slug"], "orphan?")
    await gql.ok("mutation D($slug: String!) { deleteArticle(slug: $slug) }", {"slug": article["slug"]}, alice.token)
    assert (await gql.ok(NODE, {"id": comment["id"]}))["node"] is None
    expect_error(await gql(DELETE, {"id": comment["id"]}, bob.token), "NOT_FOUND")


# --- Comment.article, node, nodes ------------------------------------------------------------


async def test_node_resolves_a_comment_with_its_article(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "via node")
    node = (await gql.ok(NODE, {"id": comment["id"]}))["node"]
    assert node["__typename"] == "Comment"
    assert node["id"] == comment["id"]
    assert node["body"] == "via node"
    assert node["createdAt"] == comment["createdAt"]
    assert node["author"] == {"username": "bob"}
    assert node["article"] == {"slug": article["slug"], "title": "Discussed", "author": {"username": "alice"}}


async def test_comment_article_follows_a_title_change(
    gql: GQL, article: dict[str, Any], alice: User, bob: User
) -> None:
    comment = await add(gql, bob, article["slug"], "still here")
    update = (
        "mutation U($slug: String!, $input: UpdateArticleInput!) { updateArticle(slug: $slug, input: $input) { slug } }"
    )
    new_slug = (await gql.ok(update, {"slug": article["slug"], "input": {"title": "Renamed"}}, alice.token))[
        "updateArticle"
    ]["slug"]
    node = (await gql.ok(NODE, {"id": comment["id"]}))["node"]
    assert node["article"]["slug"] == new_slug
    assert bodies(await comments(gql, new_slug)) == ["still here"]


async def test_comment_article_from_the_connection(gql: GQL, article: dict[str, Any], bob: User) -> None:
    await add(gql, bob, article["slug"], "nested")
    query = """
    query C($slug: String!) {
      article(slug: $slug) { id comments { nodes { body article { id slug comments { totalCount } } } } }
    }
    """
    data = (await gql.ok(query, {"slug": article["slug"]}))["article"]
    node = data["comments"]["nodes"][0]
    assert node["article"] == {"id": data["id"], "slug": article["slug"], "comments": {"totalCount": 1}}


async def test_nodes_mixes_types_and_gives_null_for_unknown(
    gql: GQL, article: dict[str, Any], alice: User, bob: User
) -> None:
    comment = await add(gql, bob, article["slug"], "in the mix")
    gone = await add(gql, bob, article["slug"], "deleted")
    await gql.ok(DELETE, {"id": gone["id"]}, bob.token)
    ids = [article["id"], comment["id"], alice.id, gone["id"], bob.id]
    result = (await gql.ok(NODES, {"ids": ids}))["nodes"]
    assert result == [
        {"__typename": "Article", "id": article["id"], "slug": article["slug"]},
        {"__typename": "Comment", "id": comment["id"], "body": "in the mix"},
        {"__typename": "User", "id": alice.id, "username": "alice"},
        None,
        {"__typename": "User", "id": bob.id, "username": "bob"},
    ]


async def test_nodes_with_no_ids_is_empty(gql: GQL) -> None:
    assert await gql.ok(NODES, {"ids": []}) == {"nodes": []}


async def test_node_of_a_deleted_comment_is_null(gql: GQL, article: dict[str, Any], bob: User) -> None:
    comment = await add(gql, bob, article["slug"], "short-lived")
    await gql.ok(DELETE, {"id": comment["id"]}, bob.token)
    assert await gql.ok(NODE, {"id": comment["id"]}) == {"node": None}
