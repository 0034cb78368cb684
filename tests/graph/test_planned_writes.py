"""Planned operations at their edges: a failure after a commit, mutations over GET, selections without columns."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import graph.execution.planned.writes
from tests.conftest import GQL, User, create_article, path_counts

ADD_COMMENT = "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id body } }"
COUNT = "query($s: String!) { article(slug: $s) { comments { totalCount } } }"
RATE = "{ rateLimit { used } }"


async def test_a_failure_after_the_commit_is_the_fields_error_and_writes_once(
    app: Any, gql: GQL, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = (await create_article(gql, alice))["slug"]

    class FailsAfterCommit(graph.execution.planned.writes.PreparedWrite):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)

            def finish(_results: list[list[Any]]) -> Any:
                raise RuntimeError("shaping failed")

            self.finish = finish

    monkeypatch.setattr(graph.execution.planned.writes, "PreparedWrite", FailsAfterCommit)
    before = path_counts(app)
    response = await gql(ADD_COMMENT, {"s": slug, "b": "once"}, alice.token)
    assert response.status == 200
    assert response.data is None
    (error,) = response.errors
    assert error["path"] == ["addComment"] and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "requestId" in error["extensions"] and "shaping failed" not in error["message"]
    after = path_counts(app)
    # answered by planned SQL, and not by the ordinary executor a second time
    assert (after.planned - before.planned, after.ordinary - before.ordinary) == (1, 0)
    data = await gql.ok(COUNT, {"s": slug})
    assert data["article"]["comments"]["totalCount"] == 1


async def test_a_mutation_over_get_is_refused_before_any_charge(app: Any, client: httpx.AsyncClient, gql: GQL) -> None:
    before = (await gql.ok(RATE))["rateLimit"]["used"]
    mutation = 'mutation { addComment(slug: "x", body: "y") { id } }'
    for _ in range(3):
        response = await client.get("/graphql", params={"query": mutation})
        assert response.status_code == 405
    assert (await gql.ok(RATE))["rateLimit"]["used"] == before


async def test_an_article_page_selecting_only_comments_is_planned(app: Any, gql: GQL, alice: User) -> None:
    slug = (await create_article(gql, alice))["slug"]
    await gql.ok(ADD_COMMENT, {"s": slug, "b": "one"}, alice.token)
    before = (path_counts(app).planned, path_counts(app).fallbacks)
    data = await gql.ok(COUNT, {"s": slug})
    assert data["article"]["comments"]["totalCount"] == 1
    assert (await gql.ok("query($s: String!) { article(slug: $s) { __typename } }", {"s": slug}))["article"] == {
        "__typename": "Article"
    }
    assert (path_counts(app).planned, path_counts(app).fallbacks) == (before[0] + 2, before[1])
