"""Search pages on SQLite: two plans, one answer (``graph/queries.py``, ``search_walks``).

When nearly every article matches, the page walks the ordering's index with the FTS5 match as a
correlated ``EXISTS`` and stops after one page; otherwise the matches are listed (``IN``), then
read and sorted. Both must give the same connection (edges, cursors, page info, ``totalCount``)
for every ordering, filter and page. SQLite only: PostgreSQL's planner makes that choice itself,
from its statistics (``articles(search:)`` on both engines is in ``test_articles.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from graph import queries
from tests.conftest import GQL, Users, create_article, sql_of

QUERY = """
query L($first: Int, $after: String, $tag: String, $author: String, $favoritedBy: String,
        $search: String, $orderBy: ArticleOrder) {
  articles(first: $first, after: $after, tag: $tag, author: $author, favoritedBy: $favoritedBy,
           search: $search, orderBy: $orderBy) {
    totalCount
    edges { cursor node { title favoritesCount } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

ARTICLES = 40
MISSING_COMMON = {7}  # the only article without the word "common"
SEARCHES = ["common", "common rare", "nomatch"]
ORDERS: list[dict[str, str] | None] = [
    None,
    {"field": "CREATED_AT", "direction": "ASC"},
    {"field": "FAVORITES_COUNT", "direction": "DESC"},
    {"field": "FAVORITES_COUNT", "direction": "ASC"},
]
FILTERS: list[dict[str, str]] = [{}, {"tag": "python"}, {"author": "bob"}, {"favoritedBy": "carol"}]


@pytest.fixture
def engine_name() -> str:
    return "sqlite"


@pytest.fixture
async def corpus(gql: GQL, users: Users) -> None:
    """40 articles, oldest first; all but one say "common", every sixth "rare"; ties in favorites."""
    alice, bob, carol = [await users.register(name) for name in ("alice", "bob", "carol")]
    for i in range(ARTICLES):
        words = ("other" if i in MISSING_COMMON else "common") + (" rare" if i % 6 == 0 else "")
        article = await create_article(
            gql, (alice, bob)[i % 2], f"Article {i}", body=f"{words} text", tagList=["python" if i % 3 else "rust"]
        )
        if i % 4 == 0:
            await gql.ok(
                "mutation($s: String!) { favoriteArticle(slug: $s) { id } }", {"s": article["slug"]}, carol.token
            )


async def _every_page(gql: GQL, variables: dict[str, Any]) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    after = None
    for _ in range(ARTICLES + 1):
        page = (await gql.ok(QUERY, {**variables, "after": after}))["articles"]
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("pagination never ended")


async def _all_listings(gql: GQL) -> dict[str, list[dict[str, Any]]]:
    listings = {}
    for search in SEARCHES:
        for order in ORDERS:
            for filters in FILTERS:
                for first in (4, 20):
                    variables = {"search": search, "orderBy": order, "first": first, **filters}
                    listings[repr(variables)] = await _every_page(gql, variables)
    return listings


async def test_walking_and_listing_give_the_same_pages(gql: GQL, corpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "search_walks", lambda *_: True)
    walked = await _all_listings(gql)
    monkeypatch.setattr(queries, "search_walks", lambda *_: False)
    listed = await _all_listings(gql)
    monkeypatch.undo()
    chosen = await _all_listings(gql)
    assert walked == listed
    assert chosen == listed
    # not vacuous: the newest-first listing of "common" holds every article that says it
    pages = listed[repr({"search": "common", "orderBy": None, "first": 4})]
    titles = [edge["node"]["title"] for page in pages for edge in page["edges"]]
    assert titles == [f"Article {i}" for i in reversed(range(ARTICLES)) if i not in MISSING_COMMON]
    assert {page["totalCount"] for page in pages} == {ARTICLES - len(MISSING_COMMON)}


async def test_a_word_in_nearly_every_article_walks_a_rare_one_lists(app: Any, gql: GQL, corpus: None) -> None:
    page = "query($s: String!, $n: Int) { articles(search: $s, first: $n) { totalCount edges { node { title } } } }"
    with sql_of(app) as statements:
        data = await gql.ok(page, {"s": "common", "n": 1})
    assert data["articles"] == {"totalCount": ARTICLES - 1, "edges": [{"node": {"title": f"Article {ARTICLES - 1}"}}]}
    searched = [sql for sql in statements if "article_fts" in sql]
    # the count of matches from the index (also totalCount here), then the page, walking
    assert len(searched) == 2, statements
    assert "count(*)" in searched[0] and "EXISTS" in searched[1], searched

    with sql_of(app) as statements:
        data = await gql.ok(page, {"s": "rare", "n": 1})
    assert data["articles"] == {"totalCount": 7, "edges": [{"node": {"title": "Article 36"}}]}
    searched = [sql for sql in statements if "article_fts" in sql]
    assert len(searched) == 2, statements
    assert "EXISTS" not in searched[1] and "IN (SELECT article_fts.rowid" in searched[1], searched


@pytest.mark.parametrize(
    ("matches", "span", "first", "walks"),
    [
        (49_366, 50_000, 20, True),  # the benchmark's "lorem": at worst 655 articles visited
        (48_177, 50_000, 20, True),
        (40_000, 50_000, 20, False),  # at worst 10,021 visited: listing 40,000 is cheaper
        (0, 50_000, 20, False),
        (3, 3, 20, False),  # a small database: sorting three rows costs nothing
        (39, 40, 1, True),
        (39, 40, 3, False),
        (0, 0, 20, False),
    ],
)
def test_when_a_search_walks(matches: int, span: int, first: int, walks: bool) -> None:
    assert queries.search_walks(matches, span, first) is walks
