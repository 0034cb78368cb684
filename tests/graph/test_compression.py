"""gzip on the real HTTP endpoint (graph/transport/compression.py) and the BREACH rule (graph/transport/secrets.py)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx
import orjson
import pytest
from graphql import build_schema, get_operation_ast, parse
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from graph.app import create_app
from graph.schema import create_schema
from graph.settings import Settings
from graph.transport.compression import CompressionMiddleware, accepted_encoding
from graph.transport.secrets import SECRET_TYPES, SecretSelections
from tests.conftest import REGISTER, User

# introspection of every type's fields: tens of KiB of JSON, no data needed
LARGE = "{ __schema { types { name kind description fields { name description type { name kind } } } } }"
SMALL = "{ __typename }"
# 20 copies of each token: a response over 1 KiB, so only the rule can keep it uncompressed
TOKENS = " ".join(f"t{i}: token r{i}: refreshToken" for i in range(10))
LOGIN = f"mutation($input: LoginInput!) {{ login(input: $input) {{ {TOKENS} user {{ username }} }} }}"
REGISTER_LARGE = f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {TOKENS} }} }}"
REFRESH = f"mutation($token: String!) {{ refreshToken(refreshToken: $token) {{ {TOKENS} }} }}"


class Raw:
    """A response as it crossed the wire: status, headers and the undecoded body."""

    def __init__(self, response: httpx.Response, raw: bytes) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.raw = raw

    @property
    def encoding(self) -> str | None:
        value: str | None = self.headers.get("content-encoding")
        return value

    def json(self) -> Any:
        return orjson.loads(gzip.decompress(self.raw) if self.encoding == "gzip" else self.raw)


async def send(client: httpx.AsyncClient, method: str, url: str, accept_encoding: str | None, **kwargs: Any) -> Raw:
    """Send without httpx's own ``Accept-Encoding`` (``None``: no header at all) and keep the body undecoded."""
    request = client.build_request(method, url, **kwargs)
    del request.headers["accept-encoding"]
    if accept_encoding is not None:
        request.headers["accept-encoding"] = accept_encoding
    response = await client.send(request, stream=True)
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    if method != "HEAD":  # a HEAD answer gives GET's length
        assert response.headers.get("content-length") in (None, str(len(raw)))
    return Raw(response, raw)


async def post(client: httpx.AsyncClient, query: str, accept_encoding: str | None = "gzip", **variables: Any) -> Raw:
    return await send(client, "POST", "/graphql", accept_encoding, json={"query": query, "variables": variables})


async def test_a_large_answer_is_gzipped_and_decodes_to_the_same_json(client: httpx.AsyncClient) -> None:
    identity = await post(client, LARGE, accept_encoding=None)
    compressed = await post(client, LARGE)
    assert identity.encoding is None and len(identity.raw) > 10_000
    assert compressed.status == 200 and compressed.encoding == "gzip"
    assert len(compressed.raw) < len(identity.raw) / 4
    assert compressed.json() == identity.json() and "errors" not in identity.json()
    # a shared cache must key both on Accept-Encoding (RFC 9110, 12.5.5)
    assert "accept-encoding" in compressed.headers["vary"].lower()
    assert "accept-encoding" in identity.headers["vary"].lower()
    # GET answers too
    got = await send(client, "GET", "/graphql", "gzip", params={"query": LARGE})
    assert got.encoding == "gzip" and got.json() == identity.json()


async def test_a_small_answer_is_sent_as_it_is(client: httpx.AsyncClient) -> None:
    small = await post(client, SMALL)
    assert small.encoding is None and len(small.raw) < 1024
    assert small.json() == {"data": {"__typename": "Query"}}
    assert "vary" not in small.headers  # identity for every client: nothing varies


@pytest.mark.parametrize(
    ("accept_encoding", "encoding"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("gzip;q=0", None),
        ("br", None),
        ("*;q=0", None),
        ("*", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate, gzip;q=0.5, br", "gzip"),
        ("*;q=0.5, gzip;q=0", None),
    ],
)
async def test_accept_encoding_is_negotiated(
    client: httpx.AsyncClient, accept_encoding: str | None, encoding: str | None
) -> None:
    response = await post(client, LARGE, accept_encoding=accept_encoding)
    assert response.encoding == encoding
    assert accepted_encoding(accept_encoding) == encoding


async def test_answers_with_tokens_are_never_compressed(client: httpx.AsyncClient) -> None:
    register = await post(
        client, REGISTER_LARGE, input={"username": "carol", "email": "carol@example.com", "password": "password123"}
    )
    login = await post(client, LOGIN, input={"email": "carol@example.com", "password": "password123"})
    refresh = await post(client, REFRESH, token=login.json()["data"]["login"]["r0"])
    for response in (register, login, refresh):
        assert response.status == 200 and "errors" not in response.json(), response.json()
        assert len(response.raw) >= 1024  # large enough: only the rule keeps it identity
        assert response.encoding is None
        assert response.headers["cache-control"] == "no-store, no-transform"  # and no proxy compresses it
        assert "vary" not in response.headers
    # a failed login is treated the same: the rule is by operation, not outcome
    failed = await post(client, LOGIN, input={"email": "carol@example.com", "password": "wrong-password"})
    assert failed.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert failed.headers["cache-control"] == "no-store, no-transform"


async def test_other_mutations_and_queries_keep_plain_no_store(client: httpx.AsyncClient, users: Any) -> None:
    alice: User = await users.register("alice")
    body = "x" * 200
    fields = " ".join(f"b{i}: bio" for i in range(8))  # over 1 KiB in all
    response = await send(
        client,
        "POST",
        "/graphql",
        "gzip",
        json={
            "query": f"mutation($b: String!) {{ updateViewer(input: {{bio: $b}}) {{ {fields} }} }}",
            "variables": {"b": body},
        },
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.json() == {"data": {"updateViewer": {f"b{i}": body for i in range(8)}}}
    assert response.encoding == "gzip" and response.headers["cache-control"] == "no-store"


async def test_the_playground_and_its_assets_are_compressed(client: httpx.AsyncClient) -> None:
    page = await send(client, "GET", "/graphql", "gzip", headers={"Accept": "text/html"})
    asset = await send(client, "GET", "/static/graphiql/graphiql.min.css", "gzip")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert page.encoding == "gzip" and b"<html" in gzip.decompress(page.raw).lower()
    assert asset.status == 200 and asset.encoding == "gzip" and len(gzip.decompress(asset.raw)) > 100_000
    # byte ranges and a strong validator belong to the identity file, not to its gzip form (RFC 9110, 14.3, 8.8.1)
    assert "accept-ranges" not in asset.headers and asset.headers["etag"].startswith("W/")
    identity = await send(client, "GET", "/static/graphiql/graphiql.min.css", None)
    assert identity.headers["accept-ranges"] == "bytes" and not identity.headers["etag"].startswith("W/")
    head = await send(client, "HEAD", "/static/graphiql/graphiql.min.css", "gzip")
    assert head.encoding is None and head.raw == b""


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=changes))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield client
    finally:
        await app.state.conduit.broker.close()
        await app.state.conduit.db.dispose()


async def test_compression_can_be_turned_off(settings: Settings) -> None:
    async with serving(settings, compression=False) as client:
        response = await post(client, LARGE)
    assert response.encoding is None and len(response.raw) > 10_000 and "vary" not in response.headers


SDL = """
type User { name: String }
type AuthPayload { token: String user: User }
type Wrapper { payload: AuthPayload note: String }
union Outcome = Wrapper | User
type Query { user: User }
type Mutation {
  resetPassword(code: String): AuthPayload
  nested: Wrapper
  outcome: Outcome
  rename(name: String): User
}
"""


@pytest.mark.parametrize(
    ("document", "secret"),
    [
        ("mutation { resetPassword(code: 1) { token } }", True),  # a mutation no list names
        ("mutation { resetPassword(code: 1) { __typename } }", True),
        ("mutation { nested { payload { user { name } } } }", True),
        ("mutation { nested { note } }", False),
        ("mutation { outcome { ... on Wrapper { payload { token } } } }", True),
        ("mutation { outcome { ... on User { name } } }", False),
        ("mutation { nested { ...P } } fragment P on Wrapper { payload { token } }", True),
        ("mutation { rename(name: 1) { name } }", False),
        ("query { user { name } }", False),
    ],
)
def test_the_rule_follows_the_schema_not_a_list_of_names(document: str, secret: bool) -> None:
    rule = SecretSelections(build_schema(SDL))
    parsed = parse(document)
    definition = get_operation_ast(parsed)
    assert definition is not None
    assert rule.carries_secret(parsed, definition) is secret
    assert "Query" not in rule.reaching  # so a query costs one set lookup


def test_every_token_field_is_inside_a_secret_type() -> None:
    """A credential added outside ``SECRET_TYPES`` would be compressed: name it there."""
    schema = create_schema(Settings(env="test"))._schema
    rule = SecretSelections(schema)
    for type_name, named in schema.type_map.items():
        for field_name, field in getattr(named, "fields", {}).items():
            if type_name.startswith("__") or "token" not in field_name.lower():
                continue
            holder = type_name in SECRET_TYPES
            returns = getattr(field.type, "name", None) in SECRET_TYPES or str(field.type).strip("!") in SECRET_TYPES
            assert holder or returns, f"{type_name}.{field_name} looks like a credential outside {set(SECRET_TYPES)}"
    # every mutation returning a secret type is covered, whatever its name
    mutation = schema.mutation_type
    assert mutation is not None
    returning = {name for name, field in mutation.fields.items() if str(field.type).strip("!") in SECRET_TYPES}
    assert {"register", "login", "refreshToken"} <= returning
    for name in returning:
        parsed = parse(f"mutation {{ {name} {{ __typename }} }}")
        definition = get_operation_ast(parsed)
        assert definition is not None and rule.carries_secret(parsed, definition)


def test_register_document_of_the_suite_is_a_secret() -> None:
    rule = SecretSelections(create_schema(Settings(env="test"))._schema)
    parsed = parse(REGISTER)
    definition = get_operation_ast(parsed)
    assert definition is not None and rule.carries_secret(parsed, definition)


async def test_large_and_streamed_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``THREAD_MINIMUM_SIZE`` a body is compressed off the loop; a streamed one chunk by chunk."""
    threaded: list[int] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(function: Any, *args: Any) -> Any:
        threaded.append(len(args[0]))
        return await run_sync(function, *args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    big = orjson.dumps({"text": "conduit " * 40_000})  # 320 KB

    async def whole(_request: Any) -> Response:
        return Response(big, media_type="application/json")

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            yield orjson.dumps({"chunk": index, "text": "streamed " * 200}) + b"\n"

    async def streamed(_request: Any) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="application/x-ndjson+json")

    app = CompressionMiddleware(Starlette(routes=[Route("/whole", whole), Route("/streamed", streamed)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        whole_response = await send(client, "GET", "/whole", "gzip")
    assert whole_response.encoding == "gzip" and gzip.decompress(whole_response.raw) == big
    assert threaded == [len(big)]
    # the streamed response as the server would send it, message by message
    sent: list[Message] = []

    requested = False

    async def receive() -> Message:
        nonlocal requested
        if requested:  # the client stays connected until the response ends
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def capture(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/streamed",
        "raw_path": b"/streamed",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"accept-encoding", b"gzip")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
    }
    await app(scope, receive, capture)
    headers = dict(sent[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip" and b"content-length" not in headers
    bodies = [message["body"] for message in sent[1:] if message.get("body")]
    assert len(bodies) == 4  # three chunks, then the end of the stream carries gzip's trailer
    # every chunk was flushed whole: each decodes on arrival, before the stream ends
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert [orjson.loads(decoder.decompress(body))["chunk"] for body in bodies[:3]] == [0, 1, 2]
    assert decoder.decompress(bodies[3]) == b"" and decoder.eof
