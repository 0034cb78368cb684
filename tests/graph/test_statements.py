"""No N+1: the SQL statements per operation do not grow with the page size."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GQL, User, create_article

QUERY = """
query Page($first: Int!) {
  articles(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      slug title tagList favorited favoritesCount
      author { username bio image following followersCount }
      comments(first: 5) { totalCount edges { node { body author { username } article { slug } } } }
    } }
  }
}
"""


async def _seed(gql: GQL, author: User, reader: User, count: int) -> None:
    for i in range(count):
        article = await create_article(gql, author, f"Article number {i}", tagList=[f"t{i % 7}", "common"])
        await gql.ok(
            'mutation($s: String!) { addComment(slug: $s, body: "first!") { id } }',
            {"s": article["slug"]},
            reader.token,
        )
        if i % 3 == 0:
            await gql.ok(
                "mutation($s: String!) { favoriteArticle(slug: $s) { id } }", {"s": article["slug"]}, reader.token
            )


@pytest.mark.parametrize("viewer", ["anonymous", "reader"])
async def test_statement_count_is_constant_in_page_size(
    gql: GQL, users: Any, statements: list[str], viewer: str
) -> None:
    authors = [await users.register(f"author{i}") for i in range(5)]
    reader = await users.register("reader")
    await gql.ok('mutation { followUser(username: "author0") { id } }', token=reader.token)
    for i, author in enumerate(authors):
        await _seed(gql, author, reader, 20 + (i == 0))  # 101 articles in all
    token = reader.token if viewer == "reader" else None

    counts = {}
    for first in (1, 20, 100):
        statements.clear()
        data = await gql.ok(QUERY, {"first": first}, token)
        assert len(data["articles"]["edges"]) == first
        counts[first] = len(statements)
    assert counts[1] == counts[20] == counts[100], counts
    # one authentication lookup when signed in, the page, the count, and one per relation
    assert counts[100] <= 12, statements
