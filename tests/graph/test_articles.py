"""Articles: create, update, delete, favorite, list (filters, search, ordering, paging), feed, tags.

Everything goes through the real /graphql endpoint; the only out-of-band setup is ``set_role``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from tests.conftest import GQL, Response, User, Users, create_article, set_role

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")

ARTICLE = """
  id slug title description body tagList createdAt updatedAt favorited favoritesCount
  author { username }
"""

GET_ARTICLE = "query A($slug: String!) { article(slug: $slug) { " + ARTICLE + " } }"

CREATE = "mutation C($input: CreateArticleInput!) { createArticle(input: $input) { " + ARTICLE + " } }"

UPDATE = (
    "mutation U($slug: String!, $input: UpdateArticleInput!) { updateArticle(slug: $slug, input: $input) { "
    + ARTICLE
    + " } }"
)

DELETE = "mutation D($slug: String!) { deleteArticle(slug: $slug) }"

FAVORITE = "mutation F($slug: String!) { favoriteArticle(slug: $slug) { slug favorited favoritesCount } }"

UNFAVORITE = "mutation F($slug: String!) { unfavoriteArticle(slug: $slug) { slug favorited favoritesCount } }"

FOLLOW = "mutation F($username: String!) { followUser(username: $username) { username following } }"

ADD_COMMENT = "mutation C($slug: String!, $body: String!) { addComment(slug: $slug, body: $body) { id } }"

CONNECTION = """
  totalCount
  edges { cursor node { slug title favoritesCount author { username } } }
  nodes { slug }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
"""

ARTICLES = (
    """
query L($first: Int, $after: String, $tag: String, $author: String, $favoritedBy: String,
        $search: String, $orderBy: ArticleOrder) {
  articles(first: $first, after: $after, tag: $tag, author: $author, favoritedBy: $favoritedBy,
           search: $search, orderBy: $orderBy) {
"""
    + CONNECTION
    + "} }"
)

FEED = "query F($first: Int, $after: String) { feed(first: $first, after: $after) { " + CONNECTION + " } }"

USER_ARTICLES = (
    "query U($username: String!, $first: Int, $after: String) { user(username: $username) { "
    "articles(first: $first, after: $after) { " + CONNECTION + " } } }"
)

USER_FAVORITES = (
    "query U($username: String!, $first: Int, $after: String) { user(username: $username) { "
    "favorites(first: $first, after: $after) { " + CONNECTION + " } } }"
)

TOTAL = "{ articles { totalCount } }"


# --- helpers ---------------------------------------------------------------------------------


def expect_error(response: Response, code: str) -> None:
    """An execution error with one GraphQL error of ``code``."""
    assert response.status == 200, response.body
    assert response.codes == [code], response.body


def expect_error_code_in(response: Response, codes: set[str]) -> None:
    """A request refused with one error whose code is one of ``codes`` and no executed data."""
    assert response.errors, response.body
    assert set(response.codes) <= codes and response.codes, response.body
    data = response.data
    assert data is None or all(value is None for value in data.values()), response.body


async def total_articles(gql: GQL) -> int:
    count: int = (await gql.ok(TOTAL))["articles"]["totalCount"]
    return count


async def articles(gql: GQL, token: str | None = None, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await gql.ok(ARTICLES, variables, token))["articles"]
    return connection


def titles(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["title"] for edge in connection["edges"]]


async def page_all(
    gql: GQL, query: str, path: list[str], variables: dict[str, Any], token: str | None = None, first: int = 3
) -> tuple[list[str], list[dict[str, Any]]]:
    """Walk a connection page by page; return every title and every page."""
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(50):
        data = await gql.ok(query, {**variables, "first": first, "after": after}, token)
        for key in path:
            data = data[key]
        pages.append(data)
        seen.extend(titles(data))
        if data["edges"]:
            assert data["pageInfo"]["startCursor"] == data["edges"][0]["cursor"]
            assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        assert [n["slug"] for n in data["nodes"]] == [e["node"]["slug"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return seen, pages
        after = data["pageInfo"]["endCursor"]
    raise AssertionError("pagination never ended")


# --- createArticle ---------------------------------------------------------------------------


async def test_create_article_returns_the_article(gql: GQL, alice: User) -> None:
    data = await gql.ok(
        CREATE,
        {"input": {"title": "Hello World", "description": "desc", "body": "some body", "tagList": ["a", "b"]}},
        alice.token,
    )
    article = data["createArticle"]
    assert article["slug"] == "hello-world"
    assert article["title"] == "Hello World"
    assert article["description"] == "desc"
    assert article["body"] == "some body"
    assert article["tagList"] == ["a", "b"]
    assert article["favorited"] is False
    assert article["favoritesCount"] == 0
    assert article["author"] == {"username": "alice"}
    assert article["id"]
    assert DATETIME.match(article["createdAt"]), article["createdAt"]
    assert DATETIME.match(article["updatedAt"]), article["updatedAt"]
    fetched = (await gql.ok(GET_ARTICLE, {"slug": "hello-world"}))["article"]
    assert fetched["id"] == article["id"]
    assert fetched["createdAt"] == article["createdAt"]


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Hello World", "hello-world"),
        ("How To Train Your Dragon", "how-to-train-your-dragon"),
        ("Crème Brûlée", "creme-brulee"),
    ],
)
async def test_slug_is_derived_from_the_title(gql: GQL, alice: User, title: str, slug: str) -> None:
    article = await create_article(gql, alice, title)
    assert article["slug"] == slug
    assert (await gql.ok(GET_ARTICLE, {"slug": slug}))["article"]["title"] == title


@pytest.mark.parametrize("title", ["  Hello,   World!  ", "Hello -- World", "HELLO world"])
async def test_slug_joins_words_with_single_dashes(gql: GQL, alice: User, title: str) -> None:
    article = await create_article(gql, alice, title)
    assert article["slug"] == "hello-world"


@pytest.mark.parametrize("title", ["🎉🎉🎉", "日本語", "!!!"])
async def test_slug_of_a_title_without_ascii_letters_is_usable(gql: GQL, alice: User, title: str) -> None:
    first = await create_article(gql, alice, title)
    second = await create_article(gql, alice, title)
    for article in (first, second):
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", article["slug"]), article["slug"]
        fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
        assert fetched["id"] == article["id"]
    assert first["slug"] != second["slug"]


async def test_same_title_gets_a_different_slug_with_the_same_base(gql: GQL, alice: User, bob: User) -> None:
    first = await create_article(gql, alice, "Hello World")
    second = await create_article(gql, bob, "Hello World")
    third = await create_article(gql, alice, "Hello World")
    assert first["slug"] == "hello-world"
    slugs = {first["slug"], second["slug"], third["slug"]}
    assert len(slugs) == 3
    for slug in slugs:
        assert slug.startswith("hello-world")
    for article in (first, second, third):
        fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
        assert fetched["id"] == article["id"]


async def test_tag_list_keeps_order_drops_duplicates_and_blanks_and_trims(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Tags", tagList=["zeta", "  alpha ", "", "zeta", "   ", "alpha", "mid"])
    assert article["tagList"] == ["zeta", "alpha", "mid"]
    fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
    assert fetched["tagList"] == ["zeta", "alpha", "mid"]


async def test_tag_list_defaults_to_empty(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "No tags")
    assert article["tagList"] == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": ""}, "title", "can't be empty"),
        ({"title": "   "}, "title", "can't be empty"),
        ({"description": ""}, "description", "can't be empty"),
        ({"description": " \t "}, "description", "can't be empty"),
        ({"body": ""}, "body", "can't be empty"),
        ({"body": "\n  "}, "body", "can't be empty"),
        ({"title": "t" * 201}, "title", "is too long"),
        ({"description": "d" * 1001}, "description", "is too long"),
        ({"body": "b" * 100_001}, "body", "is too long"),
        ({"tagList": [f"tag{i}" for i in range(11)]}, "tagList", None),
        ({"tagList": ["ok", "t" * 41]}, "tagList", None),
    ],
)
async def test_create_validation_is_bad_user_input_and_stores_nothing(
    gql: GQL, alice: User, fields: dict[str, Any], field: str, message: str | None
) -> None:
    await create_article(gql, alice, "Existing")
    before = await total_articles(gql)
    payload = {"title": "A title", "description": "about it", "body": "the body", **fields}
    response = await gql(CREATE, {"input": payload}, alice.token)
    expect_error(response, "BAD_USER_INPUT")
    errors = response.error_fields()
    assert field in errors, errors
    assert errors[field], errors
    if message is not None:
        assert message in errors[field], errors
    assert await total_articles(gql) == before


@pytest.mark.parametrize("title", ["", "   "])
async def test_empty_title_message_is_exactly_cant_be_empty(gql: GQL, alice: User, title: str) -> None:
    payload = {"title": title, "description": "about it", "body": "the body"}
    response = await gql(CREATE, {"input": payload}, alice.token)
    expect_error(response, "BAD_USER_INPUT")
    assert response.error_fields() == {"title": ["can't be empty"]}
    assert await total_articles(gql) == 0


async def test_limits_themselves_are_allowed(gql: GQL, alice: User) -> None:
    article = await create_article(
        gql,
        alice,
        "t" * 200,
        description="d" * 1000,
        body="b" * 100_000,
        tagList=[f"{i}" + "x" * 39 for i in range(10)],
    )
    assert len(article["title"]) == 200
    assert len(article["tagList"]) == 10


async def test_anonymous_create_is_unauthenticated_and_stores_nothing(gql: GQL) -> None:
    payload = {"title": "Anon", "description": "about it", "body": "the body"}
    response = await gql(CREATE, {"input": payload})
    expect_error(response, "UNAUTHENTICATED")
    assert await total_articles(gql) == 0


# --- updateArticle ---------------------------------------------------------------------------


async def test_author_updates_body(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Original", tagList=["t"])
    data = await gql.ok(UPDATE, {"slug": article["slug"], "input": {"body": "new body"}}, alice.token)
    updated = data["updateArticle"]
    assert updated["body"] == "new body"
    assert updated["slug"] == article["slug"]
    assert updated["title"] == "Original"
    assert updated["description"] == article["description"]
    assert updated["tagList"] == ["t"]
    assert updated["id"] == article["id"]
    assert DATETIME.match(updated["updatedAt"])
    fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
    assert fetched["body"] == "new body"


async def test_title_change_changes_slug_and_old_slug_is_gone(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Old Title")
    assert article["slug"] == "old-title"
    data = await gql.ok(UPDATE, {"slug": "old-title", "input": {"title": "Brand New Title"}}, alice.token)
    updated = data["updateArticle"]
    assert updated["slug"] == "brand-new-title"
    assert updated["title"] == "Brand New Title"
    assert updated["id"] == article["id"]
    assert (await gql.ok(GET_ARTICLE, {"slug": "old-title"}))["article"] is None
    fetched = (await gql.ok(GET_ARTICLE, {"slug": "brand-new-title"}))["article"]
    assert fetched["id"] == article["id"]
    assert fetched["title"] == "Brand New Title"


async def test_title_change_to_a_taken_title_gets_a_unique_slug(gql: GQL, alice: User, bob: User) -> None:
    await create_article(gql, bob, "Taken")
    mine = await create_article(gql, alice, "Mine")
    data = await gql.ok(UPDATE, {"slug": mine["slug"], "input": {"title": "Taken"}}, alice.token)
    slug = data["updateArticle"]["slug"]
    assert slug != "taken" and slug.startswith("taken")
    assert (await gql.ok(GET_ARTICLE, {"slug": "taken"}))["article"]["author"] == {"username": "bob"}
    assert (await gql.ok(GET_ARTICLE, {"slug": slug}))["article"]["author"] == {"username": "alice"}


async def test_update_with_the_same_title_keeps_the_slug(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Same Title")
    data = await gql.ok(UPDATE, {"slug": "same-title", "input": {"title": "Same Title"}}, alice.token)
    assert data["updateArticle"]["slug"] == "same-title"
    assert data["updateArticle"]["createdAt"] == article["createdAt"]


async def test_another_user_cannot_update(gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "Alice Only")
    response = await gql(UPDATE, {"slug": article["slug"], "input": {"title": "Hijacked", "body": "pwned"}}, bob.token)
    expect_error(response, "FORBIDDEN")
    fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
    assert fetched["title"] == "Alice Only"
    assert fetched["body"] == article["body"]
    assert (await gql.ok(GET_ARTICLE, {"slug": "hijacked"}))["article"] is None


async def test_update_unknown_slug_is_not_found(gql: GQL, alice: User) -> None:
    response = await gql(UPDATE, {"slug": "no-such-article", "input": {"body": "x"}}, alice.token)
    expect_error(response, "NOT_FOUND")


async def test_anonymous_update_is_unauthenticated(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Stay")
    response = await gql(UPDATE, {"slug": article["slug"], "input": {"body": "x"}})
    expect_error(response, "UNAUTHENTICATED")
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]["body"] == article["body"]


@pytest.mark.parametrize("title", ["", "  "])
async def test_update_empty_title_is_bad_user_input(gql: GQL, alice: User, title: str) -> None:
    article = await create_article(gql, alice, "Keep Me")
    response = await gql(UPDATE, {"slug": article["slug"], "input": {"title": title}}, alice.token)
    expect_error(response, "BAD_USER_INPUT")
    assert response.error_fields() == {"title": ["can't be empty"]}
    fetched = (await gql.ok(GET_ARTICLE, {"slug": "keep-me"}))["article"]
    assert fetched["title"] == "Keep Me"


async def test_update_too_long_body_is_bad_user_input(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Keep Me")
    response = await gql(UPDATE, {"slug": article["slug"], "input": {"body": "b" * 100_001}}, alice.token)
    expect_error(response, "BAD_USER_INPUT")
    assert "is too long" in response.error_fields()["body"]
    assert (await gql.ok(GET_ARTICLE, {"slug": "keep-me"}))["article"]["body"] == article["body"]


async def test_update_replaces_tag_list(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Tagged", tagList=["old", "shared"])
    data = await gql.ok(
        UPDATE, {"slug": article["slug"], "input": {"tagList": ["new", " shared ", "new", ""]}}, alice.token
    )
    assert data["updateArticle"]["tagList"] == ["new", "shared"]
    fetched = (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]
    assert fetched["tagList"] == ["new", "shared"]
    assert (await articles(gql, tag="old"))["totalCount"] == 0
    assert (await articles(gql, tag="new"))["totalCount"] == 1
    assert (await articles(gql, tag="shared"))["totalCount"] == 1


async def test_update_without_tag_list_keeps_tags(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Tagged", tagList=["b", "a"])
    data = await gql.ok(UPDATE, {"slug": article["slug"], "input": {"description": "new"}}, alice.token)
    assert data["updateArticle"]["tagList"] == ["b", "a"]


# --- deleteArticle ---------------------------------------------------------------------------


async def test_author_deletes_and_gets_the_global_id(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Doomed")
    data = await gql.ok(DELETE, {"slug": article["slug"]}, alice.token)
    assert data["deleteArticle"] == article["id"]
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"] is None
    assert await total_articles(gql) == 0
    node = await gql.ok("query N($id: ID!) { node(id: $id) { id } }", {"id": article["id"]})
    assert node["node"] is None


async def test_another_user_cannot_delete(gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "Survivor")
    response = await gql(DELETE, {"slug": article["slug"]}, bob.token)
    expect_error(response, "FORBIDDEN")
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]["id"] == article["id"]


async def test_anonymous_delete_is_unauthenticated(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Survivor")
    response = await gql(DELETE, {"slug": article["slug"]})
    expect_error(response, "UNAUTHENTICATED")
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"] is not None


async def test_delete_unknown_slug_is_not_found(gql: GQL, alice: User) -> None:
    expect_error(await gql(DELETE, {"slug": "nothing-here"}, alice.token), "NOT_FOUND")


@pytest.mark.parametrize("role", ["MODERATOR", "ADMIN"])
async def test_moderator_and_admin_may_delete_any_article(
    gql: GQL, app: Any, alice: User, users: Users, role: str
) -> None:
    mod = await users.register("mod")
    article = await create_article(gql, alice, "Reported")
    expect_error(await gql(DELETE, {"slug": article["slug"]}, mod.token), "FORBIDDEN")
    await set_role(app, "mod", role)
    data = await gql.ok(DELETE, {"slug": article["slug"]}, mod.token)
    assert data["deleteArticle"] == article["id"]
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"] is None


async def test_delete_removes_comments_favorites_and_tag_links(gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "With Stuff", tagList=["gone"])
    keep = await create_article(gql, alice, "Kept")
    await gql.ok(FAVORITE, {"slug": article["slug"]}, bob.token)
    await gql.ok(FAVORITE, {"slug": keep["slug"]}, bob.token)
    comment_id = (await gql.ok(ADD_COMMENT, {"slug": article["slug"], "body": "nice"}, bob.token))["addComment"]["id"]
    favorites = (await gql.ok(USER_FAVORITES, {"username": "bob"}))["user"]["favorites"]
    assert favorites["totalCount"] == 2

    await gql.ok(DELETE, {"slug": article["slug"]}, alice.token)

    favorites = (await gql.ok(USER_FAVORITES, {"username": "bob"}))["user"]["favorites"]
    assert favorites["totalCount"] == 1
    assert titles(favorites) == ["Kept"]
    assert (await articles(gql, favoritedBy="bob"))["totalCount"] == 1
    node = await gql.ok("query N($id: ID!) { node(id: $id) { id } }", {"id": comment_id})
    assert node["node"] is None
    assert (await articles(gql, tag="gone"))["totalCount"] == 0
    popular = (await gql.ok("{ popularTags { name articlesCount } }"))["popularTags"]
    assert all(tag["articlesCount"] == 0 for tag in popular if tag["name"] == "gone"), popular


async def test_delete_only_favorite_leaves_zero_favorites(gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "Loved")
    await gql.ok(FAVORITE, {"slug": article["slug"]}, bob.token)
    await gql.ok(DELETE, {"slug": article["slug"]}, alice.token)
    favorites = (await gql.ok(USER_FAVORITES, {"username": "bob"}))["user"]["favorites"]
    assert favorites["totalCount"] == 0
    assert favorites["edges"] == []


# --- favoriteArticle / unfavoriteArticle -----------------------------------------------------


async def test_favorite_and_unfavorite(gql: GQL, alice: User, bob: User, users: Users) -> None:
    carol = await users.register("carol")
    article = await create_article(gql, alice, "Likeable")
    slug = article["slug"]

    data = await gql.ok(FAVORITE, {"slug": slug}, bob.token)
    assert data["favoriteArticle"] == {"slug": slug, "favorited": True, "favoritesCount": 1}
    data = await gql.ok(FAVORITE, {"slug": slug}, bob.token)  # idempotent
    assert data["favoriteArticle"] == {"slug": slug, "favorited": True, "favoritesCount": 1}
    data = await gql.ok(FAVORITE, {"slug": slug}, carol.token)
    assert data["favoriteArticle"] == {"slug": slug, "favorited": True, "favoritesCount": 2}

    as_alice = (await gql.ok(GET_ARTICLE, {"slug": slug}, alice.token))["article"]
    assert (as_alice["favorited"], as_alice["favoritesCount"]) == (False, 2)
    anonymous = (await gql.ok(GET_ARTICLE, {"slug": slug}))["article"]
    assert (anonymous["favorited"], anonymous["favoritesCount"]) == (False, 2)
    as_bob = (await gql.ok(GET_ARTICLE, {"slug": slug}, bob.token))["article"]
    assert (as_bob["favorited"], as_bob["favoritesCount"]) == (True, 2)

    data = await gql.ok(UNFAVORITE, {"slug": slug}, bob.token)
    assert data["unfavoriteArticle"] == {"slug": slug, "favorited": False, "favoritesCount": 1}
    data = await gql.ok(UNFAVORITE, {"slug": slug}, bob.token)  # idempotent
    assert data["unfavoriteArticle"] == {"slug": slug, "favorited": False, "favoritesCount": 1}
    as_bob = (await gql.ok(GET_ARTICLE, {"slug": slug}, bob.token))["article"]
    assert (as_bob["favorited"], as_bob["favoritesCount"]) == (False, 1)


async def test_unfavorite_never_favorited_is_not_an_error(gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "Meh")
    data = await gql.ok(UNFAVORITE, {"slug": article["slug"]}, bob.token)
    assert data["unfavoriteArticle"]["favorited"] is False
    assert data["unfavoriteArticle"]["favoritesCount"] == 0


@pytest.mark.parametrize("mutation", [FAVORITE, UNFAVORITE])
async def test_favorite_unknown_slug_is_not_found(gql: GQL, alice: User, mutation: str) -> None:
    expect_error(await gql(mutation, {"slug": "missing"}, alice.token), "NOT_FOUND")


@pytest.mark.parametrize("mutation", [FAVORITE, UNFAVORITE])
async def test_anonymous_favorite_is_unauthenticated(gql: GQL, alice: User, mutation: str) -> None:
    article = await create_article(gql, alice, "Anon Fave")
    expect_error(await gql(mutation, {"slug": article["slug"]}), "UNAUTHENTICATED")
    assert (await gql.ok(GET_ARTICLE, {"slug": article["slug"]}))["article"]["favoritesCount"] == 0


# --- articles: filters -----------------------------------------------------------------------


@pytest.fixture
async def library(gql: GQL, alice: User, bob: User, users: Users) -> dict[str, Any]:
    """Four articles by alice and bob with tags and favorites."""
    carol = await users.register("carol")
    a1 = await create_article(gql, alice, "Alice One", tagList=["python", "web"])
    a2 = await create_article(gql, alice, "Alice Two", tagList=["rust"])
    b1 = await create_article(gql, bob, "Bob One", tagList=["python"])
    b2 = await create_article(gql, bob, "Bob Two", tagList=["web", "rust"])
    await gql.ok(FAVORITE, {"slug": a2["slug"]}, carol.token)
    await gql.ok(FAVORITE, {"slug": b1["slug"]}, carol.token)
    await gql.ok(FAVORITE, {"slug": b2["slug"]}, alice.token)
    return {"carol": carol, "a1": a1, "a2": a2, "b1": b1, "b2": b2}


async def test_articles_default_is_newest_first(gql: GQL, library: dict[str, Any]) -> None:
    connection = await articles(gql)
    assert connection["totalCount"] == 4
    assert titles(connection) == ["Bob Two", "Bob One", "Alice Two", "Alice One"]
    assert connection["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"tag": "python"}, ["Bob One", "Alice One"]),
        ({"tag": "rust"}, ["Bob Two", "Alice Two"]),
        ({"author": "alice"}, ["Alice Two", "Alice One"]),
        ({"author": "bob"}, ["Bob Two", "Bob One"]),
        ({"favoritedBy": "carol"}, ["Bob One", "Alice Two"]),
        ({"favoritedBy": "alice"}, ["Bob Two"]),
        ({"favoritedBy": "bob"}, []),
        ({"tag": "python", "author": "bob"}, ["Bob One"]),
        ({"tag": "rust", "favoritedBy": "carol"}, ["Alice Two"]),
        ({"tag": "web", "author": "alice", "favoritedBy": "carol"}, []),
        ({"author": "bob", "favoritedBy": "carol", "tag": "python"}, ["Bob One"]),
    ],
)
async def test_articles_filters_combine_with_and(
    gql: GQL, library: dict[str, Any], variables: dict[str, Any], expected: list[str]
) -> None:
    connection = await articles(gql, **variables)
    assert titles(connection) == expected
    assert connection["totalCount"] == len(expected)


@pytest.mark.parametrize(
    "variables",
    [{"tag": "no-such-tag"}, {"author": "nobody"}, {"favoritedBy": "nobody"}, {"tag": "python", "author": "nobody"}],
)
async def test_unknown_filter_values_give_an_empty_connection(
    gql: GQL, library: dict[str, Any], variables: dict[str, Any]
) -> None:
    connection = await articles(gql, **variables)
    assert connection["totalCount"] == 0
    assert connection["edges"] == []
    assert connection["nodes"] == []
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_total_count_counts_all_matches_not_the_page(gql: GQL, library: dict[str, Any]) -> None:
    connection = await articles(gql, first=1, tag="rust")
    assert connection["totalCount"] == 2
    assert titles(connection) == ["Bob Two"]
    assert connection["pageInfo"]["hasNextPage"] is True


@pytest.fixture
async def searchable(gql: GQL, alice: User, bob: User) -> None:
    await create_article(gql, alice, "Python tips", description="short notes", body="Learning asyncio quickly")
    await create_article(gql, alice, "Rust book", description="About Python bindings", body="ownership rules")
    await create_article(gql, bob, "Pythonic code", description="style", body="idioms and more")


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("python", ["Rust book", "Python tips"]),
        ("PYTHON", ["Rust book", "Python tips"]),
        ("pYtHoN", ["Rust book", "Python tips"]),
        ("asyncio", ["Python tips"]),  # body
        ("notes", ["Python tips"]),  # description
        ("pythonic", ["Pythonic code"]),
        ("pyth", []),  # whole words only
        ("python asyncio", ["Python tips"]),
        ("Python ownership", ["Rust book"]),
        ("python rust asyncio", []),
        ("idioms", ["Pythonic code"]),
    ],
)
async def test_search_matches_whole_words_case_insensitively_all_words(
    gql: GQL, searchable: None, search: str, expected: list[str]
) -> None:
    connection = await articles(gql, search=search)
    assert titles(connection) == expected
    assert connection["totalCount"] == len(expected)


@pytest.mark.parametrize("search", ["!!!", "   ", "-- ; ''", "*"])
async def test_search_without_word_characters_matches_nothing(gql: GQL, searchable: None, search: str) -> None:
    connection = await articles(gql, search=search)
    assert connection["totalCount"] == 0
    assert connection["edges"] == []


@pytest.mark.parametrize(
    "search",
    [
        "\"' OR 1=1 --",
        "'; DROP TABLE article; --",
        "title:foo OR *",
        'NEAR(python rust) "unterminated',
        "python*",
        "foo AND NOT bar",
        "^python",
        "(python",
        "python)",
        "{title body}: python",
    ],
)
async def test_hostile_search_strings_are_plain_text(gql: GQL, searchable: None, search: str) -> None:
    response = await gql(ARTICLES, {"search": search})
    assert response.status == 200, response.body
    assert not response.errors, response.errors
    assert response.data["articles"]["totalCount"] == len(response.data["articles"]["edges"])
    assert await total_articles(gql) == 3


@pytest.mark.parametrize("search", ["\"' OR 1=1 --", "title:foo OR *", "foo AND NOT bar"])
async def test_hostile_search_words_must_all_match(gql: GQL, searchable: None, search: str) -> None:
    # None of the articles contains "foo" / "1" / "or", so nothing may match.
    connection = await articles(gql, search=search)
    assert connection["totalCount"] == 0


async def test_search_combines_with_other_filters(gql: GQL, searchable: None) -> None:
    assert titles(await articles(gql, search="python", author="alice")) == ["Rust book", "Python tips"]
    assert titles(await articles(gql, search="python", author="bob")) == []
    assert titles(await articles(gql, search="idioms", author="bob")) == ["Pythonic code"]


async def test_search_sees_updates(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Gardening", body="tomatoes")
    assert (await articles(gql, search="tomatoes"))["totalCount"] == 1
    await gql.ok(UPDATE, {"slug": article["slug"], "input": {"body": "cucumbers"}}, alice.token)
    assert (await articles(gql, search="tomatoes"))["totalCount"] == 0
    assert (await articles(gql, search="cucumbers"))["totalCount"] == 1
    await gql.ok(DELETE, {"slug": article["slug"]}, alice.token)
    assert (await articles(gql, search="cucumbers"))["totalCount"] == 0


# --- articles: ordering ----------------------------------------------------------------------


@pytest.fixture
async def ranked(gql: GQL, alice: User, bob: User, users: Users) -> None:
    """Four articles created in order Zero, Two, One, Three with that many favorites."""
    fans = [bob, await users.register("carol"), await users.register("dave")]
    for title, count in [("Zero", 0), ("Two", 2), ("One", 1), ("Three", 3)]:
        article = await create_article(gql, alice, title)
        for fan in fans[:count]:
            await gql.ok(FAVORITE, {"slug": article["slug"]}, fan.token)


async def test_order_by_favorites_count_desc(gql: GQL, ranked: None) -> None:
    connection = await articles(gql, orderBy={"field": "FAVORITES_COUNT", "direction": "DESC"})
    assert titles(connection) == ["Three", "Two", "One", "Zero"]
    assert [e["node"]["favoritesCount"] for e in connection["edges"]] == [3, 2, 1, 0]


async def test_order_by_favorites_count_defaults_to_desc(gql: GQL, ranked: None) -> None:
    connection = await articles(gql, orderBy={"field": "FAVORITES_COUNT"})
    assert titles(connection) == ["Three", "Two", "One", "Zero"]


async def test_order_by_favorites_count_asc(gql: GQL, ranked: None) -> None:
    connection = await articles(gql, orderBy={"field": "FAVORITES_COUNT", "direction": "ASC"})
    assert titles(connection) == ["Zero", "One", "Two", "Three"]
    assert [e["node"]["favoritesCount"] for e in connection["edges"]] == [0, 1, 2, 3]


async def test_order_by_created_at(gql: GQL, ranked: None) -> None:
    asc = await articles(gql, orderBy={"field": "CREATED_AT", "direction": "ASC"})
    assert titles(asc) == ["Zero", "Two", "One", "Three"]
    desc = await articles(gql, orderBy={"field": "CREATED_AT", "direction": "DESC"})
    assert titles(desc) == ["Three", "One", "Two", "Zero"]


async def test_paging_favorites_order_with_counts(gql: GQL, ranked: None) -> None:
    seen, _ = await page_all(gql, ARTICLES, ["articles"], {"orderBy": {"field": "FAVORITES_COUNT"}}, first=1)
    assert seen == ["Three", "Two", "One", "Zero"]


# --- articles: pagination --------------------------------------------------------------------


@pytest.fixture
async def seven(gql: GQL, alice: User) -> list[str]:
    """Seven articles, oldest first."""
    names = [f"Article {i}" for i in range(7)]
    for name in names:
        await create_article(gql, alice, name)
    return names


async def test_paging_newest_first_visits_every_article_once(gql: GQL, seven: list[str]) -> None:
    seen, pages = await page_all(gql, ARTICLES, ["articles"], {})
    assert seen == list(reversed(seven))
    assert [len(page["edges"]) for page in pages] == [3, 3, 1]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    assert all(page["totalCount"] == 7 for page in pages)


async def test_paging_created_at_asc(gql: GQL, seven: list[str]) -> None:
    seen, pages = await page_all(gql, ARTICLES, ["articles"], {"orderBy": {"field": "CREATED_AT", "direction": "ASC"}})
    assert seen == seven
    assert pages[-1]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("direction", "newest_first"), [pytest.param("DESC", True, id="DESC"), pytest.param("ASC", False, id="ASC")]
)
async def test_paging_favorites_count_ties_break_on_id(
    gql: GQL, seven: list[str], direction: str, newest_first: bool
) -> None:
    variables = {"orderBy": {"field": "FAVORITES_COUNT", "direction": direction}}
    seen, pages = await page_all(gql, ARTICLES, ["articles"], variables)
    # All counts tie, so the order is by ID in the same direction: newest first for DESC.
    assert seen == (list(reversed(seven)) if newest_first else seven)
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    # The order is stable: the same walk gives the same result.
    again, _ = await page_all(gql, ARTICLES, ["articles"], variables)
    assert again == seen


async def test_paging_favorites_count_mixed_ties(gql: GQL, seven: list[str], bob: User) -> None:
    edges = (await articles(gql, first=7))["edges"]
    by_title = {edge["node"]["title"]: edge["node"]["slug"] for edge in edges}
    for title in ("Article 2", "Article 5"):
        await gql.ok(FAVORITE, {"slug": by_title[title]}, bob.token)
    seen, _ = await page_all(gql, ARTICLES, ["articles"], {"orderBy": {"field": "FAVORITES_COUNT"}}, first=2)
    assert len(seen) == 7 and sorted(seen) == sorted(seven)
    assert set(seen[:2]) == {"Article 2", "Article 5"}


async def test_first_zero_gives_no_edges_but_the_count(gql: GQL, seven: list[str]) -> None:
    connection = await articles(gql, first=0)
    assert connection["edges"] == []
    assert connection["totalCount"] == 7


async def test_first_past_the_end(gql: GQL, seven: list[str]) -> None:
    connection = await articles(gql, first=100)
    assert len(connection["edges"]) == 7
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_after_last_cursor_gives_empty_page(gql: GQL, seven: list[str]) -> None:
    connection = await articles(gql, first=7)
    last = connection["pageInfo"]["endCursor"]
    tail = await articles(gql, first=3, after=last)
    assert tail["edges"] == []
    assert tail["pageInfo"]["hasNextPage"] is False
    assert tail["totalCount"] == 7


OFFSET_PAGE = (
    "query O($first: Int, $offset: Int, $after: String, $orderBy: ArticleOrder) { "
    "articles(first: $first, offset: $offset, after: $after, orderBy: $orderBy) { " + CONNECTION + " } }"
)


async def test_offset_pages_are_slices_of_the_listing(gql: GQL, seven: list[str]) -> None:
    newest_first = list(reversed(seven))
    for offset in range(8):
        page = (await gql.ok(OFFSET_PAGE, {"first": 3, "offset": offset}))["articles"]
        assert titles(page) == newest_first[offset : offset + 3], offset
        assert page["totalCount"] == 7
        assert page["pageInfo"]["hasPreviousPage"] is (offset > 0)
        assert page["pageInfo"]["hasNextPage"] is (offset + 3 < 7)
    ascending = {"field": "CREATED_AT", "direction": "ASC"}
    page = (await gql.ok(OFFSET_PAGE, {"first": 2, "offset": 5, "orderBy": ascending}))["articles"]
    assert titles(page) == seven[5:7]


async def test_an_offset_page_continues_by_its_cursor(gql: GQL, seven: list[str]) -> None:
    first = (await gql.ok(OFFSET_PAGE, {"first": 2, "offset": 2}))["articles"]
    rest = (await gql.ok(OFFSET_PAGE, {"first": 10, "after": first["pageInfo"]["endCursor"]}))["articles"]
    assert titles(first) + titles(rest) == list(reversed(seven))[2:]
    zero = (await gql.ok(OFFSET_PAGE, {"first": 2, "offset": 0, "after": first["pageInfo"]["endCursor"]}))["articles"]
    assert titles(zero) == titles(rest)[:2]  # offset 0 skips nothing, so it may go with a cursor


async def test_feed_pages_by_offset(gql: GQL, seven: list[str], bob: User) -> None:
    await gql.ok(FOLLOW, {"username": "alice"}, bob.token)
    query = "query F($offset: Int) { feed(first: 2, offset: $offset) { " + CONNECTION + " } }"
    page = (await gql.ok(query, {"offset": 6}, bob.token))["feed"]
    assert titles(page) == [seven[0]]
    assert page["totalCount"] == 7 and page["pageInfo"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"offset": -1}, "must be 0 or more"),
        ({"offset": 2, "after": "garbage"}, "cannot be combined with after"),
    ],
)
async def test_bad_offset_is_bad_user_input(
    gql: GQL, seven: list[str], variables: dict[str, Any], message: str
) -> None:
    response = await gql(OFFSET_PAGE, variables)
    expect_error(response, "BAD_USER_INPUT")
    assert response.error_fields() == {"offset": [message]}


@pytest.mark.parametrize("first", [-1, 101, 1000])
async def test_first_out_of_range_is_refused(gql: GQL, alice: User, first: int) -> None:
    await create_article(gql, alice, "Something")
    response = await gql(ARTICLES, {"first": first})
    expect_error_code_in(response, {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"})


@pytest.mark.parametrize("after", ["garbage", "!!!", "YWJj"])
async def test_undecodable_cursor_is_bad_user_input(gql: GQL, seven: list[str], after: str) -> None:
    response = await gql(ARTICLES, {"after": after})
    expect_error(response, "BAD_USER_INPUT")
    fields = response.error_fields()
    assert list(fields) == ["after"], fields
    assert fields["after"], fields


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (None, {"field": "FAVORITES_COUNT", "direction": "DESC"}),
        ({"field": "FAVORITES_COUNT", "direction": "DESC"}, None),
        ({"field": "CREATED_AT", "direction": "ASC"}, {"field": "FAVORITES_COUNT", "direction": "ASC"}),
        ({"field": "FAVORITES_COUNT", "direction": "ASC"}, {"field": "CREATED_AT", "direction": "DESC"}),
    ],
)
async def test_cursor_from_another_ordering_is_bad_user_input(
    gql: GQL, seven: list[str], source: dict[str, str] | None, target: dict[str, str] | None
) -> None:
    cursor = (await articles(gql, first=2, orderBy=source))["pageInfo"]["endCursor"]
    response = await gql(ARTICLES, {"first": 2, "after": cursor, "orderBy": target})
    expect_error(response, "BAD_USER_INPUT")
    assert "after" in response.error_fields()


async def test_comment_cursor_is_not_an_article_cursor(gql: GQL, alice: User) -> None:
    article = await create_article(gql, alice, "Talked About")
    for body in ("one", "two"):
        await gql.ok(ADD_COMMENT, {"slug": article["slug"], "body": body}, alice.token)
    query = "query C($slug: String!) { article(slug: $slug) { comments(first: 1) { pageInfo { endCursor } } } }"
    cursor = (await gql.ok(query, {"slug": article["slug"]}))["article"]["comments"]["pageInfo"]["endCursor"]
    response = await gql(ARTICLES, {"after": cursor})
    expect_error(response, "BAD_USER_INPUT")
    assert "after" in response.error_fields()


# --- feed ------------------------------------------------------------------------------------


async def test_feed_shows_followed_authors_newest_first(gql: GQL, alice: User, bob: User, users: Users) -> None:
    carol = await users.register("carol")
    dave = await users.register("dave")
    await create_article(gql, bob, "Bob 1")
    await create_article(gql, carol, "Carol 1")
    await create_article(gql, dave, "Dave 1")
    await create_article(gql, alice, "Alice 1")
    await create_article(gql, bob, "Bob 2")
    await create_article(gql, carol, "Carol 2")

    empty = (await gql.ok(FEED, {}, alice.token))["feed"]
    assert empty["totalCount"] == 0 and empty["edges"] == []

    await gql.ok(FOLLOW, {"username": "bob"}, alice.token)
    await gql.ok(FOLLOW, {"username": "carol"}, alice.token)
    feed = (await gql.ok(FEED, {}, alice.token))["feed"]
    assert titles(feed) == ["Carol 2", "Bob 2", "Carol 1", "Bob 1"]
    assert feed["totalCount"] == 4

    seen, pages = await page_all(gql, FEED, ["feed"], {}, alice.token, first=3)
    assert seen == ["Carol 2", "Bob 2", "Carol 1", "Bob 1"]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, False]

    # Bob's feed is his own business.
    assert (await gql.ok(FEED, {}, bob.token))["feed"]["totalCount"] == 0


async def test_feed_drops_unfollowed_authors(gql: GQL, alice: User, bob: User) -> None:
    await create_article(gql, bob, "Bob 1")
    await gql.ok(FOLLOW, {"username": "bob"}, alice.token)
    assert titles((await gql.ok(FEED, {}, alice.token))["feed"]) == ["Bob 1"]
    await gql.ok("mutation U($u: String!) { unfollowUser(username: $u) { username } }", {"u": "bob"}, alice.token)
    assert (await gql.ok(FEED, {}, alice.token))["feed"]["totalCount"] == 0


async def test_anonymous_feed_is_unauthenticated(gql: GQL) -> None:
    response = await gql(FEED, {})
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None


async def test_feed_bad_cursor_is_bad_user_input(gql: GQL, alice: User) -> None:
    response = await gql(FEED, {"after": "garbage"}, alice.token)
    assert response.codes == ["BAD_USER_INPUT"]
    assert "after" in response.error_fields()


# --- tags / popularTags ----------------------------------------------------------------------


@pytest.fixture
async def tagged(gql: GQL, alice: User, bob: User) -> None:
    await create_article(gql, alice, "One", tagList=["x", "y", "z"])
    await create_article(gql, alice, "Two", tagList=["y", "z"])
    await create_article(gql, bob, "Three", tagList=["z", "b"])
    await create_article(gql, bob, "Four", tagList=["a"])


async def test_tags_most_used_first_ties_by_name(gql: GQL, tagged: None) -> None:
    assert (await gql.ok("{ tags }"))["tags"] == ["z", "y", "a", "b", "x"]


async def test_popular_tags_have_counts(gql: GQL, tagged: None) -> None:
    popular = (await gql.ok("{ popularTags { name articlesCount } }"))["popularTags"]
    assert popular == [
        {"name": "z", "articlesCount": 3},
        {"name": "y", "articlesCount": 2},
        {"name": "a", "articlesCount": 1},
        {"name": "b", "articlesCount": 1},
        {"name": "x", "articlesCount": 1},
    ]


async def test_tags_first_limits_the_list(gql: GQL, tagged: None) -> None:
    assert (await gql.ok("{ tags(first: 2) }"))["tags"] == ["z", "y"]
    assert (await gql.ok("{ tags(first: 0) }"))["tags"] == []
    popular = (await gql.ok("{ popularTags(first: 3) { name articlesCount } }"))["popularTags"]
    assert [tag["name"] for tag in popular] == ["z", "y", "a"]


async def test_tag_counts_follow_updates(gql: GQL, alice: User, tagged: None) -> None:
    await gql.ok(UPDATE, {"slug": "two", "input": {"tagList": ["x"]}}, alice.token)
    popular = (await gql.ok("{ popularTags { name articlesCount } }"))["popularTags"]
    counts = {tag["name"]: tag["articlesCount"] for tag in popular}
    assert counts["z"] == 2 and counts["x"] == 2 and counts["y"] == 1
    assert [tag["name"] for tag in popular][:2] == ["x", "z"]


@pytest.mark.parametrize("field", ["tags(first: $n)", "popularTags(first: $n) { name }"])
@pytest.mark.parametrize("first", [-1, 101])
async def test_tags_first_out_of_range_is_refused(gql: GQL, tagged: None, field: str, first: int) -> None:
    response = await gql("query T($n: Int) { " + field + " }", {"n": first})
    expect_error_code_in(response, {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"})


async def test_no_tags_is_an_empty_list(gql: GQL) -> None:
    assert await gql.ok("{ tags popularTags { name } }") == {"tags": [], "popularTags": []}


# --- User.articles / User.favorites ----------------------------------------------------------


async def test_user_articles_newest_first_with_paging(gql: GQL, alice: User, bob: User) -> None:
    for i in range(5):
        await create_article(gql, alice, f"Alice {i}")
    await create_article(gql, bob, "Bob Only")
    seen, pages = await page_all(gql, USER_ARTICLES, ["user", "articles"], {"username": "alice"}, first=2)
    assert seen == [f"Alice {i}" for i in reversed(range(5))]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    assert all(page["totalCount"] == 5 for page in pages)
    bob_articles = (await gql.ok(USER_ARTICLES, {"username": "bob"}))["user"]["articles"]
    assert titles(bob_articles) == ["Bob Only"]


async def test_user_favorites_most_recently_favorited_first(gql: GQL, alice: User, bob: User) -> None:
    created = [await create_article(gql, alice, f"Fav {i}") for i in range(4)]
    for i in (2, 0, 3, 1):
        await gql.ok(FAVORITE, {"slug": created[i]["slug"]}, bob.token)
    expected = ["Fav 1", "Fav 3", "Fav 0", "Fav 2"]
    favorites = (await gql.ok(USER_FAVORITES, {"username": "bob"}))["user"]["favorites"]
    assert titles(favorites) == expected
    assert favorites["totalCount"] == 4
    seen, pages = await page_all(gql, USER_FAVORITES, ["user", "favorites"], {"username": "bob"}, first=3)
    assert seen == expected
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, False]

    await gql.ok(UNFAVORITE, {"slug": created[3]["slug"]}, bob.token)
    favorites = (await gql.ok(USER_FAVORITES, {"username": "bob"}))["user"]["favorites"]
    assert titles(favorites) == ["Fav 1", "Fav 0", "Fav 2"]
    assert (await gql.ok(USER_FAVORITES, {"username": "alice"}))["user"]["favorites"]["totalCount"] == 0


async def test_user_favorites_cursors_of_the_old_kind_still_page(gql: GQL, alice: User, bob: User) -> None:
    """Until 2026-12 these cursors were written "fa", the kind that now only means favorites count ascending."""
    for i in range(3):
        await gql.ok(FAVORITE, {"slug": (await create_article(gql, alice, f"Fav {i}"))["slug"]}, bob.token)
    variables = {"username": "bob", "first": 1}
    cursor = (await gql.ok(USER_FAVORITES, variables))["user"]["favorites"]["pageInfo"]["endCursor"]
    kind, key, pk = base64.urlsafe_b64decode(cursor).decode().split("|")
    old = base64.urlsafe_b64encode(f"fa|{key}|{pk}".encode()).decode()
    pages = [
        (await gql.ok(USER_FAVORITES, {**variables, "after": after}))["user"]["favorites"] for after in (cursor, old)
    ]
    assert kind == "fv" and titles(pages[0]) == ["Fav 1"] and pages[1] == pages[0]
    ascending = {"field": "FAVORITES_COUNT", "direction": "ASC"}
    for after in (cursor, old):
        expect_error(await gql(ARTICLES, {"first": 1, "after": after, "orderBy": ascending}), "BAD_USER_INPUT")
    by_count = (await articles(gql, first=1, orderBy=ascending))["pageInfo"]["endCursor"]
    expect_error(await gql(USER_FAVORITES, {**variables, "after": by_count}), "BAD_USER_INPUT")


@pytest.mark.parametrize("query", [USER_ARTICLES, USER_FAVORITES])
async def test_user_connections_reject_bad_cursors(gql: GQL, alice: User, query: str) -> None:
    response = await gql(query, {"username": "alice", "after": "garbage"})
    assert response.codes == ["BAD_USER_INPUT"]
    assert "after" in response.error_fields()


@pytest.mark.parametrize("query", [USER_ARTICLES, USER_FAVORITES])
@pytest.mark.parametrize("first", [-1, 101])
async def test_user_connections_reject_first_out_of_range(gql: GQL, alice: User, query: str, first: int) -> None:
    response = await gql(query, {"username": "alice", "first": first})
    assert response.errors, response.body
    assert set(response.codes) <= {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}
