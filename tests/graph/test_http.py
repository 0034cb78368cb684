"""GraphQL over HTTP on /graphql: methods, media types, status codes, auth header, playground."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import GQL, User

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_post_json_query_answers_application_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_graphql_response_media_type_is_used_when_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": f"{GRAPHQL_RESPONSE}, application/json"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{", None),  # parse error
        ("{ noSuchField }", None),  # validation error
        ("query Q($n: Int) { articles(first: $n) { totalCount } }", {"n": "ten"}),  # variable coercion
    ],
)
async def test_request_errors_are_400_without_data_for_graphql_response_json(
    client: httpx.AsyncClient, query: str, variables: dict[str, object] | None
) -> None:
    body = {"query": query, "variables": variables}
    strict = await client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
    assert strict.status_code == 400
    assert "data" not in strict.json()
    assert strict.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    legacy = await client.post("/graphql", json=body, headers={"Accept": "application/json"})
    assert legacy.status_code == 200
    assert "data" not in legacy.json()


async def test_wrong_variable_type_names_the_variable(gql: GQL) -> None:
    response = await gql("query Q($first: Int) { articles(first: $first) { totalCount } }", {"first": "many"})
    assert response.codes == ["BAD_USER_INPUT"]
    assert "first" in response.error_fields()


async def test_get_runs_queries(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "query Q($n: Int) { tags(first: $n) }", "variables": json.dumps({"n": 5})}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"tags": []}}


async def test_mutation_over_get_is_405_and_runs_nothing(client: httpx.AsyncClient, gql: GQL) -> None:
    query = (
        'mutation { register(input: {username: "eve", email: "eve@example.com", password: "password123"}) { token } }'
    )
    response = await client.get("/graphql", params={"query": query})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert (await gql.ok('{ user(username: "eve") { id } }'))["user"] is None


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        ("{ __typename }", {"Content-Type": "text/plain"}, 415),  # a browser "simple request"
        ("query={ __typename }", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("not json", {"Content-Type": "application/json"}, 400),
        ("[]", {"Content-Type": "application/json"}, 400),  # batching is not offered
        ('{"query": 1}', {"Content-Type": "application/json"}, 400),
        ('{"variables": {}}', {"Content-Type": "application/json"}, 400),
        ('{"query": "{ __typename }", "variables": "[]"}', {"Content-Type": "application/json"}, 400),
        ("", {"Content-Type": "application/json"}, 400),
    ],
)
async def test_malformed_requests_are_refused(
    client: httpx.AsyncClient, content: str, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code == status
    if status != 415:
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * (1024 * 1024 + 10)}})
    response = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_body_in_chunks_is_read_whole_and_its_limit_counted_as_it_comes(client: httpx.AsyncClient) -> None:
    """No Content-Length (chunked): the body arrives in several ASGI messages, read to the end or
    refused with 413 as soon as it passes the limit."""
    headers = {"Content-Type": "application/json"}
    query = "query($v: String!) { article(slug: $v) { title } }"
    body = json.dumps({"query": query, "variables": {"v": "x" * 5000}}).encode()
    response = await client.post("/graphql", content=_chunks(body, 1000), headers=headers)
    assert response.status_code == 200 and response.json() == {"data": {"article": None}}
    large = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * (1024 * 1024 + 10)}}).encode()
    response = await client.post("/graphql", content=_chunks(large, 64 * 1024), headers=headers)
    assert response.status_code == 413


async def test_unacceptable_accept_header_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"Accept": "text/csv"})
    assert response.status_code == 406


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
async def test_both_authorization_schemes_work(gql: GQL, alice: User, scheme: str) -> None:
    response = await gql("{ viewer { username } }", Authorization=f"{scheme} {alice.token}")
    assert response.data == {"viewer": {"username": "alice"}}


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"],
)
async def test_bad_authorization_is_401_never_anonymous(gql: GQL, header: str) -> None:
    response = await gql("{ viewer { username } }", Authorization=header)
    assert response.status == 401
    assert response.codes == ["UNAUTHENTICATED"]
    assert "data" not in response.body


async def test_no_header_is_anonymous(gql: GQL) -> None:
    assert await gql.ok("{ viewer { username } }") == {"viewer": None}


async def test_browser_gets_the_playground_with_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assets = [part.split('"')[0] for part in html.split('src="')[1:]] + [
        part.split('"')[0] for part in html.split('href="')[1:]
    ]
    assert len(assets) >= 6, html
    assert all(asset.startswith("/static/") for asset in assets), assets  # nothing from another origin
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


async def test_unsupported_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    for method in ("OPTIONS", "HEAD"):
        assert (await client.request(method, "/graphql")).status_code == 405


async def test_graphql_is_served_below_a_root_path(app: object) -> None:
    """Mounted below ``/conduit`` (``root_path``), ``/conduit/graphql`` is the endpoint, as the router would say."""
    transport = httpx.ASGITransport(app=app, root_path="/conduit")  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/conduit/graphql", json={"query": "{ __typename }"})
        assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}
        assert (await client.get("/conduit/healthz")).status_code == 200
        for path in ("/conduit/graphqlx", "/conduit/graphql/x", "/graphqlx"):
            assert (await client.post(path, json={"query": "{ __typename }"})).status_code == 404, path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "query A { __typename }", "operationName": "B"}, "no operation named 'B'"),
        ({"query": "query A { __typename } query B { __typename }"}, "operation name"),
    ],
)
async def test_operation_name_must_pick_one_operation(
    client: httpx.AsyncClient, body: dict[str, str], message: str
) -> None:
    response = await client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
