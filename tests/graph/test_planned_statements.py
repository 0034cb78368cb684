"""Planned SQL sends one statement per connection level, whatever the page sizes (no N+1).

Nested connections three levels deep, through to-one relations, for one and for several
parents: the number of statements depends on the shape of the query, never on how many
rows each level returns. Answers are checked by ``test_planned.py`` and
``test_planned_coverage.py``; this test counts.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import GQL, User, create_article, path_counts, sql_of

ADD_COMMENT = "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id } }"
FAVORITE = "mutation($s: String!) { favoriteArticle(slug: $s) { slug } }"
FOLLOW = "mutation($u: String!) { followUser(username: $u) { username } }"

DEEP = """query Deep($n: Int!) {
  articles(first: $n) {
    totalCount
    edges { cursor node { slug tagList favorited
      author { username following followersCount
        articles(first: $n) { totalCount edges { node { slug
          comments(first: $n) { totalCount edges { node { body author { username } } } }
        } } }
        favorites(first: $n) { nodes { slug author { username } } }
      }
      comments(first: $n) { pageInfo { hasNextPage } nodes { article { slug author { username } } } }
    } }
  }
}"""
PROFILE = """query Profile($n: Int!) {
  user(username: "alice") { username followersCount
    articles(first: $n) { totalCount edges { node { slug comments(first: $n) { nodes { body } } } } }
    favorites(first: $n) { totalCount nodes { slug } }
  }
  viewer { username articles(first: $n) { totalCount } }
}"""


ARTICLE_PAGE = """query Q2($n: Int!, $s: String!) {
  article(slug: $s) { title author { username } comments(first: $n) { edges { node { body author { username } } } } }
}"""
PROFILE_PAGE = """query P1($n: Int!) {
  user(username: "alice") { username followersCount
    articles(first: $n) { totalCount edges { cursor node { slug favorited } } pageInfo { hasNextPage endCursor } }
  }
}"""

SEARCH_PAGE = """query S($n: Int!) {
  articles(search: "post", first: $n) { totalCount edges { node { slug comments(first: $n) { nodes { body } } } } }
}"""


async def _statements(
    app: Any, gql: GQL, query: str, n: int, token: str | None, **variables: Any
) -> tuple[int, dict[str, Any]]:
    before = path_counts(app).planned
    with sql_of(app) as seen:
        data = await gql.ok(query, {"n": n, **variables}, token)
    assert path_counts(app).planned == before + 1  # answered by planned SQL
    # the budget's charge is the pipeline's, not the query's; the check of a signed-in viewer
    # is counted: it rides on the query's first statement (auth.backend.KnownViewers)
    return len([s for s in seen if "cost_budget" not in s]), data


async def test_statements_do_not_grow_with_the_page(app: Any, gql: GQL, alice: User, bob: User) -> None:
    slugs = []
    for i in range(4):
        for author in (alice, bob):
            slugs.append((await create_article(gql, author, f"Post {author.username} {i}", tagList=["x"]))["slug"])
    for slug in slugs:
        for author in (alice, bob):
            await gql.ok(ADD_COMMENT, {"s": slug, "b": f"by {author.username}"}, author.token)
        await gql.ok(FAVORITE, {"s": slug}, bob.token)
    await gql.ok(FOLLOW, {"u": "alice"}, bob.token)

    is_sqlite = app.state.conduit.db.is_sqlite
    # On SQLite one statement per connection level. On PostgreSQL, where each statement is a
    # round trip, every connection is read inside its parent's statement, and a list's total
    # with its page: one per root field (PROFILE: the user and the viewer). Signed in, the
    # viewer's check is a column of the first statement, not a statement of its own.
    # (query, variables, statements signed in, statements anonymous)
    expected: list[tuple[str, dict[str, Any], int, int]] = [
        # page + count, then one per nested connection: author.articles, author.favorites,
        # article.comments, then the comments of the author's articles
        (DEEP, {}, 6, 6) if is_sqlite else (DEEP, {}, 1, 1),
        # user + viewer, then user.articles, user.favorites, viewer.articles, then articles.comments
        # (anonymous: no viewer, so neither its statement nor its articles')
        (PROFILE, {}, 6, 4) if is_sqlite else (PROFILE, {}, 2, 1),
        # the benchmark's Q2 and P1 shapes
        (ARTICLE_PAGE, {"s": slugs[0]}, 2, 2) if is_sqlite else (ARTICLE_PAGE, {"s": slugs[0]}, 1, 1),
        (PROFILE_PAGE, {}, 2, 2) if is_sqlite else (PROFILE_PAGE, {}, 1, 1),
        # SQLite: the index's count of matches, the page, its comments; PostgreSQL: the page with
        # its comments, and the count on its own (roots.ArticleList: its plan as a subquery is slow)
        (SEARCH_PAGE, {}, 3, 3) if is_sqlite else (SEARCH_PAGE, {}, 2, 2),
    ]
    for query, variables, count, anonymous_count in expected:
        small, small_data = await _statements(app, gql, query, 1, bob.token, **variables)
        large, large_data = await _statements(app, gql, query, 10, bob.token, **variables)
        assert small == large == count, (query, small, large, count)
        assert small_data != large_data  # the larger pages did read more rows
        anonymous, _ = await _statements(app, gql, query, 10, None, **variables)
        assert anonymous == anonymous_count, (query, anonymous)
