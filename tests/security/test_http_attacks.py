"""HTTP-level attacks through the real endpoint: CSRF, batching, and the security headers of every response.

Each attack checks that it failed and that the database did not change (every row of every table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from db.models import article_table
from graph.settings import Settings
from graph.transport.headers import DEFAULT_CSP, HSTS, PLAYGROUND_CSP
from tests.conftest import SECRET, User
from tests.security.conftest import serving, snapshot

CREATE = 'mutation { createArticle(input: {title: "CSRF", description: "d", body: "b"}) { slug } }'
LOGIN = 'mutation { login(input: {email: "alice@example.com", password: "guess-%d"}) { token } }'
# What Chromium sends for a form submission or a top-level navigation
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


async def article_count(app: Any) -> int:
    async with app.state.conduit.db.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(article_table))).scalar_one())


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        # fetch(url, {method: "POST", mode: "no-cors", body: JSON.stringify(...)}) sends text/plain
        ("text/plain;charset=UTF-8", json.dumps({"query": CREATE})),
        ("text/plain; charset=application/json", json.dumps({"query": CREATE})),
        # <form method="post"> with an input named "query"
        ("application/x-www-form-urlencoded", urlencode({"query": CREATE})),
        # <form enctype="multipart/form-data">, as the GraphQL multipart upload spec would take it
        (
            "multipart/form-data; boundary=xyz",
            f'--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{json.dumps({"query": CREATE})}\r\n--xyz--\r\n',
        ),
        (None, json.dumps({"query": CREATE})),  # navigator.sendBeacon with a typeless Blob
    ],
)
async def test_csrf_simple_requests_are_refused_before_execution(
    client: httpx.AsyncClient, app: Any, alice: User, content_type: str | None, content: str
) -> None:
    headers = {"Authorization": f"Bearer {alice.token}", "Origin": "https://evil.example"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = await snapshot(app)
    response = await client.post("/graphql", content=content.encode(), headers=headers)
    assert response.status_code == 415, response.text
    assert await snapshot(app) == before
    assert await article_count(app) == 0


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "image/avif,image/webp,image/*,*/*;q=0.8", "application/json"])
async def test_mutation_over_get_is_405_and_writes_nothing(
    client: httpx.AsyncClient, app: Any, alice: User, accept: str
) -> None:
    """A form with method=GET, an <img src>, a link: the mutation travels in the URL and must never run."""
    before = await snapshot(app)
    response = await client.get(
        f"/graphql?{urlencode({'query': CREATE})}", headers={"Accept": accept, "Authorization": f"Bearer {alice.token}"}
    )
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert await snapshot(app) == before
    assert await article_count(app) == 0


async def test_get_with_a_mutation_named_among_queries_is_405(client: httpx.AsyncClient, app: Any, alice: User) -> None:
    document = f"query Q {{ __typename }} {CREATE.replace('mutation', 'mutation M', 1)}"
    before = await snapshot(app)
    response = await client.get(
        "/graphql",
        params={"query": document, "operationName": "M"},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 405
    assert await snapshot(app) == before


async def test_batched_logins_are_refused_whole(client: httpx.AsyncClient, app: Any, alice: User) -> None:
    """50 password guesses in one request would sidestep per-request rate limiting: nothing runs."""
    before = await snapshot(app)
    batch = [{"query": LOGIN % i} for i in range(50)]
    for accept in ("application/json", "application/graphql-response+json"):
        response = await client.post("/graphql", json=batch, headers={"Accept": accept})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "Batched" in response.json()["errors"][0]["message"]
    assert await snapshot(app) == before  # no rate-limit event, no token, no user changed


def assert_security_headers(response: httpx.Response, csp: str = DEFAULT_CSP) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)
    assert response.headers["permissions-policy"].startswith("camera=()")
    assert response.headers["content-security-policy"] == csp
    assert "strict-transport-security" not in response.headers  # development and tests: plain HTTP is fine


async def test_every_kind_of_response_carries_the_security_headers(client: httpx.AsyncClient, alice: User) -> None:
    responses = [
        await client.post("/graphql", json={"query": "{ __typename }"}),
        await client.get("/graphql", params={"query": "{ __typename }"}),
        await client.post("/graphql", json={"query": "{"}, headers={"Accept": "application/graphql-response+json"}),
        await client.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": "Bearer x"}),
        await client.post("/graphql", content=b"{}", headers={"Content-Type": "text/plain"}),
        await client.put("/graphql", json={"query": "{ __typename }"}),
        await client.post("/graphql", json={"query": "{ __typename }"}, headers={"Accept": "text/csv"}),
        await client.post(
            "/graphql", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
        ),  # 413
        await client.options(
            "/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        ),
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/metrics"),
        await client.get("/no-such-page"),
    ]
    assert {r.status_code for r in responses} >= {200, 400, 401, 404, 405, 406, 413, 415}
    for response in responses:
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


async def test_playground_page_gets_its_own_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert page.headers["content-type"].startswith("text/html")
    assert_security_headers(page, PLAYGROUND_CSP)
    policy = dict(part.strip().split(" ", 1) for part in PLAYGROUND_CSP.split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"].startswith("'self' 'sha256-")
    assert "unsafe" not in PLAYGROUND_CSP  # no inline script or style, no eval
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
    asset = await client.get("/static/graphiql/graphiql.min.js")
    assert asset.status_code == 200
    assert_security_headers(asset)
    assert "cache-control" not in asset.headers  # static assets may be cached


async def test_an_error_outside_graphql_still_carries_the_headers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("outside any resolver")

    monkeypatch.setattr("graph.transport.http.read_params", broken)
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    assert_security_headers(response)


async def test_production_adds_hsts(database_url: str, tmp_path: Path) -> None:
    settings = Settings(env="production", database_url=database_url, jwt_secret=SECRET, jwt_secret_file=tmp_path / "s")
    async with serving(settings) as (_app, gql):
        response = await gql("{ __typename }")
        assert response.headers["strict-transport-security"] == HSTS
        assert response.headers["x-frame-options"] == "DENY"
        health = await gql.client.get("/healthz")
        assert health.headers["strict-transport-security"] == HSTS
