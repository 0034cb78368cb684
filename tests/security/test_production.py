"""Production mode (``CONDUIT_ENV=production``) through the real endpoint: what it turns off and refuses.

Each attack checks that it failed and that the database did not change (every row of every table).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from graph.app import create_app
from graph.settings import Settings
from tests.conftest import GQL, SECRET, Response
from tests.security.conftest import serving, snapshot

GRAPHQL_RESPONSE = "application/graphql-response+json"
APP_ORIGIN = "https://app.example"


def production(database_url: str, tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        env="production",
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "secret",
        **changes,
    )


@pytest.fixture
async def prod(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, GQL]]:
    async with serving(production(database_url, tmp_path, cors_origins=[APP_ORIGIN])) as served:
        yield served


async def refused(app: Any, gql: GQL, query: str, variables: dict[str, Any] | None = None) -> Response:
    """Send ``query``; assert a request error (400, no data) and an unchanged database."""
    before = await snapshot(app)
    response = await gql(query, variables, Accept=GRAPHQL_RESPONSE)
    assert response.status == 400, response.body
    assert "data" not in response.body
    assert await snapshot(app) == before
    return response


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name fields { name } } } }",
        '{ __type(name: "User") { fields { name } } }',
        "{ articles { nodes { __type: __typename } } __schema { queryType { name } } }",
    ],
)
async def test_introspection_is_off(prod: tuple[Any, GQL], query: str) -> None:
    app, gql = prod
    response = await refused(app, gql, query)
    assert response.codes[0] == "BAD_USER_INPUT"
    assert "introspection" in response.errors[0]["message"].lower()
    assert (await gql.ok("{ __typename }")) == {"__typename": "Query"}  # not introspection


async def test_introspection_can_be_turned_on(database_url: str, tmp_path: Path) -> None:
    async with serving(production(database_url, tmp_path, introspection=True)) as (_app, gql):
        data = await gql.ok("{ __schema { queryType { name } } }")
        assert data == {"__schema": {"queryType": {"name": "Query"}}}


MISSPELLED = [
    # the document or variables, and the name a suggestion would give away
    pytest.param("{ articels { totalCount } }", None, "articles", id="field"),
    pytest.param("{ articles(frist: 1) { totalCount } }", None, "first", id="argument"),
    pytest.param("{ articles(orderBy: {field: CREATD_AT}) { totalCount } }", None, "CREATED_AT", id="enum-value"),
    pytest.param(
        "query Q($o: ArticleOrder) { articles(orderBy: $o) { totalCount } }",
        {"o": {"field": "CREATD_AT"}},
        "CREATED_AT",
        id="enum-value-in-variables",
    ),
    pytest.param(
        "query Q($o: ArticleOrder) { articles(orderBy: $o) { totalCount } }",
        {"o": {"field": "CREATED_AT", "direciton": "ASC"}},
        "direction",
        id="input-field-in-variables",
    ),
    pytest.param(
        "{ articles(orderBy: {field: CREATED_AT, direciton: ASC}) { totalCount } }", None, "direction", id="input-field"
    ),
    pytest.param("query Q($o: ArticleOrdr) { articles(orderBy: $o) { totalCount } }", None, "ArticleOrder", id="type"),
    pytest.param("{ articles { nodes { ... on Artcle { slug } } } }", None, "Article", id="fragment-type"),
    pytest.param(
        'mutation { createArticle(input: {title: "t", description: "d", body: "b", tagLst: []}) { slug } }',
        None,
        "tagList",
        id="mutation-input-field",
    ),
]


@pytest.mark.parametrize(("query", "variables", "hidden"), MISSPELLED)
async def test_field_suggestions_are_hidden(
    prod: tuple[Any, GQL], gql: GQL, query: str, variables: dict[str, Any] | None, hidden: str
) -> None:
    """The same mistakes that earn a "Did you mean" in development give no name away in production."""
    development = " ".join(error["message"] for error in (await gql(query, variables)).errors)
    assert "Did you mean" in development and f"'{hidden}'" in development, development
    app, production_gql = prod
    response = await refused(app, production_gql, query, variables)
    assert response.codes and set(response.codes) == {"BAD_USER_INPUT"}
    messages = " ".join(error["message"] for error in response.errors)
    assert "Did you mean" not in messages
    assert f"'{hidden}'" not in messages, messages


async def test_suggestions_are_hidden_wherever_introspection_is_off(database_url: str, tmp_path: Path) -> None:
    """The contract README ties them to introspection: off in development too when it is."""
    settings = Settings(
        env="development",
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "s",
        introspection=False,
    )
    async with serving(settings) as (_app, gql):
        response = await gql("{ articles(frist: 1) { totalCount } }")
        assert response.codes == ["BAD_USER_INPUT"]
        assert "Did you mean" not in response.errors[0]["message"]


async def test_unexpected_errors_are_masked(prod: tuple[Any, GQL], monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "postgresql://conduit:hunter2@db.internal:5432/conduit"

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(f"could not connect to {secret}")

    monkeypatch.setattr("graph.queries.tag_counts", broken)
    # planned SQL fails first and hands the operation to graphql-core, whose resolver fails too
    monkeypatch.setattr("graph.execution.planned.roots.TagList.start", _planned_failure)
    app, gql = prod
    before = await snapshot(app)
    response = await gql("{ tags }")
    assert response.status == 200
    assert response.data is None
    (error,) = response.errors
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": response.headers["x-request-id"]}
    assert "hunter2" not in str(response.body) and "RuntimeError" not in str(response.body)
    after = await snapshot(app)
    # the query did run, so the viewer's cost budget was charged; nothing else may change
    assert {**after, "cost_budget": []} == {**before, "cost_budget": []}


async def test_playground_is_off(prod: tuple[Any, GQL]) -> None:
    _app, gql = prod
    page = await gql.client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 406
    assert "html" not in page.headers["content-type"]
    assert (await gql.client.get("/static/graphiql/graphiql.min.js")).status_code == 404


async def test_playground_can_be_turned_on(database_url: str, tmp_path: Path) -> None:
    async with serving(production(database_url, tmp_path, playground=True)) as (_app, gql):
        page = await gql.client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "CONDUIT_JWT_SECRET is required"), ("x" * 31, "at least 32 characters"), ("", "at least 32 characters")],
)
def test_refuses_to_start_with_a_missing_or_weak_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str | None, message: str
) -> None:
    monkeypatch.delenv("CONDUIT_JWT_SECRET", raising=False)
    monkeypatch.delenv("CONDUIT_JWT_KEYS", raising=False)
    (tmp_path / "secret").write_text("a-development-secret-that-is-long-enough-to-use\n")
    settings = Settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'never.db'}",
        jwt_secret=secret,
        jwt_secret_file=tmp_path / "secret",  # a development key file is never used in production
    )
    with pytest.raises(ValueError, match=message):
        create_app(settings)


async def test_cors_preflight_from_a_foreign_origin_is_not_allowed(prod: tuple[Any, GQL]) -> None:
    app, gql = prod
    before = await snapshot(app)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    foreign = await gql.client.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in foreign.headers
    assert foreign.status_code == 400
    lookalike = await gql.client.options(
        "/graphql", headers={"Origin": "https://app.example.evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in lookalike.headers
    allowed = await gql.client.options("/graphql", headers={"Origin": APP_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers  # tokens travel in a header, never cookies
    # the actual request from a foreign origin: answered, but not readable by that page
    response = await gql("{ __typename }", Origin="https://evil.example")
    assert "access-control-allow-origin" not in response.headers
    assert await snapshot(app) == before


async def test_no_cors_without_configured_origins(database_url: str, tmp_path: Path) -> None:
    async with serving(production(database_url, tmp_path)) as (_app, gql):
        preflight = await gql.client.options(
            "/graphql", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers


def _planned_failure(*_args: Any) -> None:
    raise RuntimeError("planned SQL failed")
