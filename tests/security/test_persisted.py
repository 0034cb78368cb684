"""Automatic persisted queries and trusted documents (``graph/transport/persisted.py``) through the real endpoint.

Attacks check that they failed and that the database did not change (every row of every table).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets

from db.broker import ARTICLE_PUBLISHED
from db.models import article_table
from graph.app import create_app
from graph.caches import BoundedCache
from graph.settings import Settings
from graph.transport.persisted import PersistedQueries, PersistedQueryError, TrustedDocuments, sha256_hex
from tests.conftest import REGISTER, SECRET, User, path_counts
from tests.live import live_app
from tests.security.conftest import serving, snapshot
from tests.waiting import subscribed

GRAPHQL_RESPONSE = "application/graphql-response+json"
TAGS = "query Tags { tags(first: 3) }"
CREATE = "mutation Create($input: CreateArticleInput!) { createArticle(input: $input) { slug } }"
CREATE_LITERAL = 'mutation { createArticle(input: {title: "Untrusted", description: "d", body: "b"}) { slug } }'
PUBLISHED = "subscription Published { articlePublished { title } }"
ARTICLE = {"title": "Trusted", "description": "d", "body": "b"}


def apq(digest: str, version: Any = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], accept: str = "application/json", **headers: str
) -> Any:
    return await client.post("/graphql", json=body, headers={"Accept": accept, **headers})


def error_of(response: httpx.Response) -> tuple[str, str]:
    body = response.json()
    assert "data" not in body, body
    (error,) = body["errors"]
    return error["message"], error["extensions"]["code"]


async def article_count(app: Any) -> int:
    async with app.state.conduit.db.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(article_table))).scalar_one())


# Automatic persisted queries


async def test_apq_round_trip_uses_the_compiled_path(client: httpx.AsyncClient, app: Any) -> None:
    digest = sha256_hex(TAGS)
    unknown = await post(client, {"extensions": apq(digest)})
    assert unknown.status_code == 200
    assert error_of(unknown) == ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
    strict = await post(client, {"extensions": apq(digest)}, GRAPHQL_RESPONSE)
    assert strict.status_code == 400
    assert error_of(strict) == ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")

    registered = await post(client, {"query": TAGS, "extensions": apq(digest.upper())})
    assert registered.json() == {"data": {"tags": []}}
    compiled = path_counts(app).planned
    by_hash = await post(client, {"extensions": apq(digest), "operationName": "Tags"})
    assert by_hash.status_code == 200 and by_hash.json() == {"data": {"tags": []}}
    assert path_counts(app).planned == compiled + 1  # persistedQuery no longer keeps a request off planned SQL


async def test_apq_keeps_the_limits(client: httpx.AsyncClient) -> None:
    """A document sent with its hash is checked like any other, and one the limits refuse is not kept."""
    deep = "slug"
    for _ in range(5):  # depth 18, over the limit of 12
        deep = f"author {{ articles(first: 1) {{ nodes {{ {deep} }} }} }}"
    deep = f"{{ articles(first: 1) {{ nodes {{ {deep} }} }} }}"
    digest = sha256_hex(deep)
    first = await post(client, {"query": deep, "extensions": apq(digest)}, GRAPHQL_RESPONSE)
    assert first.status_code == 400 and error_of(first)[1] == "QUERY_TOO_COMPLEX"
    again = await post(client, {"extensions": apq(digest)}, GRAPHQL_RESPONSE)
    assert again.status_code == 400 and error_of(again)[1] == "PERSISTED_QUERY_NOT_FOUND"


async def test_apq_poisoning_with_a_mismatched_hash_is_refused(
    client: httpx.AsyncClient, app: Any, alice: User
) -> None:
    """Registering a mutation under the hash of a popular query would make every client run it."""
    before = await snapshot(app)
    poisoned = await post(
        client,
        {"query": CREATE_LITERAL, "extensions": apq(sha256_hex(TAGS))},
        Authorization=f"Bearer {alice.token}",
    )
    assert poisoned.status_code == 400
    assert error_of(poisoned) == ("provided sha does not match query", "BAD_USER_INPUT")
    assert await snapshot(app) == before
    victim = await post(client, {"extensions": apq(sha256_hex(TAGS))}, Authorization=f"Bearer {alice.token}")
    assert error_of(victim)[1] == "PERSISTED_QUERY_NOT_FOUND"  # nothing was stored
    assert await snapshot(app) == before


async def test_apq_over_get(client: httpx.AsyncClient) -> None:
    digest = sha256_hex(TAGS)
    params = {"query": TAGS, "extensions": json.dumps(apq(digest))}
    assert (await client.get("/graphql", params=params)).json() == {"data": {"tags": []}}
    by_hash = await client.get("/graphql", params={"extensions": json.dumps(apq(digest))})
    assert by_hash.status_code == 200 and by_hash.json() == {"data": {"tags": []}}


async def test_apq_mutation_by_hash_over_get_is_405(client: httpx.AsyncClient, app: Any, alice: User) -> None:
    digest = sha256_hex(CREATE_LITERAL)
    auth = {"Authorization": f"Bearer {alice.token}"}
    before = await snapshot(app)
    register = await client.get(
        "/graphql", params={"query": CREATE_LITERAL, "extensions": json.dumps(apq(digest))}, headers=auth
    )
    assert register.status_code == 405
    by_hash = await client.get("/graphql", params={"extensions": json.dumps(apq(digest))}, headers=auth)
    assert error_of(by_hash)[1] == "PERSISTED_QUERY_NOT_FOUND"  # refused, so not kept
    assert await snapshot(app) == before
    # over POST the same mutation is a normal, authenticated request, and is kept
    created = await post(client, {"query": CREATE_LITERAL, "extensions": apq(digest)}, **auth)
    assert created.json() == {"data": {"createArticle": {"slug": "untrusted"}}}
    assert await article_count(app) == 1
    after = await snapshot(app)
    by_hash = await client.get("/graphql", params={"extensions": json.dumps(apq(digest))}, headers=auth)
    assert by_hash.status_code == 405
    assert await snapshot(app) == after


@pytest.mark.parametrize(
    "body",
    [
        {"extensions": apq(sha256_hex(TAGS), version=2)},
        {"extensions": apq("not-a-hash")},
        {"extensions": apq(sha256_hex(TAGS)[:40])},
        {"extensions": {"persistedQuery": "abc"}},
        {"documentId": 42},
        {"documentId": "sha256:" + sha256_hex(TAGS), "query": TAGS},
        {"extensions": {"other": 1}},  # neither a document nor a hash
    ],
)
async def test_malformed_persisted_requests_are_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await post(client, body, accept)
        assert response.status_code == 400, response.text
        assert error_of(response)[1] == "BAD_USER_INPUT"


@pytest.mark.parametrize("off", [{"apq_cache_size": 0}, {"cache_apq_max_bytes": 0}])
async def test_apq_can_be_turned_off(database_url: str, tmp_path: Path, off: dict[str, Any]) -> None:
    settings = Settings(env="test", database_url=database_url, jwt_secret=SECRET, jwt_secret_file=tmp_path / "s", **off)
    async with serving(settings) as (_app, gql):
        unknown = await post(gql.client, {"extensions": apq(sha256_hex(TAGS))})
        assert error_of(unknown) == ("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        sent = await post(gql.client, {"query": TAGS, "extensions": apq(sha256_hex(TAGS))})
        assert sent.json() == {"data": {"tags": []}}
        again = await post(gql.client, {"extensions": apq(sha256_hex(TAGS))})
        assert error_of(again)[1] == "PERSISTED_QUERY_NOT_SUPPORTED"


def test_apq_keeps_documents_within_its_byte_budget() -> None:
    store: BoundedCache[str, str] = BoundedCache("apq", 1000, 20_000)
    persisted = PersistedQueries(store=store)
    documents = [f"query Q{i} {{ tags(first: 3) }} # {'x' * 1000}" for i in range(100)]
    for document in documents:
        persisted.remember(persisted.resolve(document, None, apq(sha256_hex(document))))
    assert 0 < store.bytes <= 20_000 and len(store) < 20 and store.evictions > 80
    last = documents[-1]
    assert persisted.resolve(None, None, apq(sha256_hex(last))).query == last
    with pytest.raises(PersistedQueryError, match="PersistedQueryNotFound"):
        persisted.resolve(None, None, apq(sha256_hex(documents[0])))
    huge = "query Huge { tags(first: 3) } # " + "x" * 20_000  # larger than the whole budget: runs, not kept
    resolved = persisted.resolve(huge, None, apq(sha256_hex(huge)))
    assert resolved.query == huge
    persisted.remember(resolved)
    assert store.get(sha256_hex(huge)) is None and store.get(sha256_hex(last)) == last


def test_other_extensions_are_kept() -> None:
    persisted = PersistedQueries(store=BoundedCache("apq", 10, 100_000))
    extensions = {**apq(sha256_hex(TAGS)), "tracing": True}
    document = persisted.resolve(TAGS, None, extensions)
    assert document.query == TAGS and document.extensions == {"tracing": True}
    persisted.remember(document)  # the HTTP handler's part, once the document was admitted
    assert "persistedQuery" in extensions  # the request's own object is left alone
    assert persisted.resolve(None, None, apq(sha256_hex(TAGS))).extensions is None


# Trusted documents


def write_documents(tmp_path: Path, *documents: str) -> Path:
    """A persisted-documents.json as GraphQL Code Generator's client preset writes it (sha256)."""
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha256_hex(document): document for document in documents}, indent=2))
    return path


def trusted_settings(database_url: str, tmp_path: Path, *, only: bool = True) -> Settings:
    return Settings(
        env="production",
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "s",
        persisted_documents=write_documents(tmp_path, REGISTER, TAGS, CREATE, PUBLISHED),
        persisted_documents_only=only,
    )


@pytest.fixture
async def trusted_only(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """The app with only trusted documents, its client, and a registered user's token."""
    async with serving(trusted_settings(database_url, tmp_path)) as (app, gql):
        variables = {"input": {"username": "trusty", "email": "trusty@example.com", "password": "password123"}}
        response = await post(gql.client, {"documentId": f"sha256:{sha256_hex(REGISTER)}", "variables": variables})
        assert "errors" not in response.json(), response.json()
        yield app, gql.client, response.json()["data"]["register"]["token"]


async def test_trusted_documents_run_by_id_hash_or_text(trusted_only: tuple[Any, httpx.AsyncClient, str]) -> None:
    app, client, token = trusted_only
    auth = {"Authorization": f"Bearer {token}"}
    digest = sha256_hex(CREATE)
    for body in (
        {"documentId": digest},  # the file's own id, as the client preset's documentId
        {"documentId": f"sha256:{digest}"},
        {"extensions": apq(digest)},
        {"query": CREATE},
        {"query": CREATE, "extensions": apq(digest)},
    ):
        response = await post(client, {**body, "variables": {"input": ARTICLE}}, **auth)
        assert response.status_code == 200 and "errors" not in response.json(), (body, response.text)
    assert await article_count(app) == 5
    by_get = await client.get("/graphql", params={"documentId": f"sha256:{sha256_hex(TAGS)}"})
    assert by_get.json() == {"data": {"tags": []}}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"query": CREATE_LITERAL}, id="untrusted-text"),
        pytest.param({"query": CREATE + " ", "variables": {"input": ARTICLE}}, id="trusted-text-altered"),
        pytest.param({"query": CREATE_LITERAL, "extensions": apq(sha256_hex(CREATE_LITERAL))}, id="apq-register"),
        pytest.param({"extensions": apq(sha256_hex(CREATE_LITERAL))}, id="apq-unknown-hash"),
        pytest.param({"documentId": f"sha256:{sha256_hex(CREATE_LITERAL)}"}, id="unknown-document-id"),
        pytest.param({"documentId": "Create"}, id="guessed-id"),
        pytest.param({"query": "{ __schema { types { name } } }"}, id="introspection"),
    ],
)
async def test_anything_else_is_not_allowed(
    trusted_only: tuple[Any, httpx.AsyncClient, str], body: dict[str, Any]
) -> None:
    app, client, token = trusted_only
    before = await snapshot(app)
    for accept, status in (("application/json", 200), (GRAPHQL_RESPONSE, 400)):
        response = await post(client, body, accept, Authorization=f"Bearer {token}")
        assert response.status_code == status
        message, code = error_of(response)
        assert code == "PERSISTED_QUERY_NOT_ALLOWED" and "trusted documents" in message
    assert await snapshot(app) == before
    # an APQ registration attempt stored nothing
    stored = await post(client, {"extensions": apq(sha256_hex(CREATE_LITERAL))})
    assert error_of(stored)[1] == "PERSISTED_QUERY_NOT_ALLOWED"


async def test_the_list_without_only_names_documents_and_allows_others(database_url: str, tmp_path: Path) -> None:
    async with serving(trusted_settings(database_url, tmp_path, only=False)) as (_app, gql):
        by_hash = await post(gql.client, {"extensions": apq(sha256_hex(TAGS))})  # never registered
        assert by_hash.json() == {"data": {"tags": []}}
        assert (await gql("{ __typename }")).data == {"__typename": "Query"}


async def test_untrusted_subscriptions_are_refused_over_websocket(database_url: str, tmp_path: Path) -> None:
    """The WebSocket transport does not pass through the HTTP handler; the validation rule covers it."""
    with live_app(trusted_settings(database_url, tmp_path)) as (url, app):
        async with websockets.connect(
            url.replace("http", "ws") + "/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            untrusted = "subscription { articlePublished { title body } }"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": untrusted}}))
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["type"] == "error" and message["id"] == "1", message
            assert message["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
            await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": PUBLISHED}}))
            await subscribed(app, ARTICLE_PUBLISHED)  # subscribed before the article is published
            async with httpx.AsyncClient(base_url=url) as client:
                variables = {"input": {"username": "ws", "email": "ws@example.com", "password": "password123"}}
                registered = await post(client, {"documentId": sha256_hex(REGISTER), "variables": variables})
                token = registered.json()["data"]["register"]["token"]
                await post(
                    client,
                    {"documentId": sha256_hex(CREATE), "variables": {"input": ARTICLE}},
                    Authorization=f"Bearer {token}",
                )
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message == {
                "id": "2",
                "type": "next",
                "payload": {"data": {"articlePublished": {"title": "Trusted"}}},
            }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "needs CONDUIT_PERSISTED_DOCUMENTS"),
        ("not json", "not valid JSON"),
        ('["query { tags }"]', "JSON object of document id to text"),
        ('{"abc": 1}', "JSON object of document id to text"),
        ("{}", "has no documents"),
        (json.dumps({sha256_hex(TAGS): CREATE}), "not the SHA-256 of its text"),
        ("missing", "cannot read"),
    ],
)
def test_a_bad_list_refuses_to_start(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "persisted-documents.json"
    if content is not None and content != "missing":
        path.write_text(content)
    settings = Settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'never.db'}",
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "s",
        persisted_documents=None if content is None else path,
        persisted_documents_only=True,
    )
    with pytest.raises(ValueError, match=message):
        create_app(settings)


def test_document_ids_of_other_hash_algorithms_are_ids() -> None:
    """A list made with sha1 (the client preset's default) still names documents by its ids."""
    trusted = TrustedDocuments({"5f0a" * 10: TAGS})
    assert trusted.get("5f0a" * 10) == TAGS
    assert trusted.get(f"sha256:{sha256_hex(TAGS)}") == TAGS
    persisted = PersistedQueries(trusted=trusted, only_trusted=True)
    assert persisted.resolve(None, "5f0a" * 10, None).query == TAGS
    with pytest.raises(PersistedQueryError) as refused:
        persisted.resolve(None, "6f0a" * 10, None)
    assert refused.value.code == "PERSISTED_QUERY_NOT_ALLOWED" and not refused.value.malformed
