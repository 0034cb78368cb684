"""Subscriptions over a real WebSocket, on both protocols, against a live server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from db.broker import ARTICLE_PUBLISHED as ARTICLE_PUBLISHED_CHANNEL
from graph.ids import pk_of
from graph.mutations.comments import comment_channel
from graph.settings import Settings
from tests.live import live_app
from tests.waiting import subscribed

COMMENT_ADDED = (
    "subscription($slug: String!) { commentAdded(slug: $slug) { body author { username } article { slug } } }"
)
ARTICLE_PUBLISHED = "subscription($tag: String) { articlePublished(tag: $tag) { title tagList } }"


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, Starlette]]:
    """A live server's URL and the app it serves (to watch its broker)."""
    with live_app(settings) as served:
        yield served


@pytest.fixture
def server(served: tuple[str, Starlette]) -> str:
    return served[0]


async def post(url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def register(url: str, name: str) -> str:
    data = await post(
        url,
        "mutation($i: RegisterInput!) { register(input: $i) { token } }",
        {"i": {"username": name, "email": f"{name}@example.com", "password": "password123"}},
    )
    return str(data["register"]["token"])


class Client:
    """A minimal client of either protocol."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.legacy = protocol == "graphql-ws"

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        return await self.receive()

    async def subscribe(self, query: str, variables: dict[str, Any], op_id: str = "1") -> None:
        kind = "start" if self.legacy else "subscribe"
        await self.ws.send(json.dumps({"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}}))

    async def receive(self, wait: float = 5) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
            if message["type"] not in ("ka", "ping", "pong"):
                return dict(message)

    async def next_payload(self) -> dict[str, Any]:
        return await self.next_payload_within(5)

    async def next_payload_within(self, wait: float) -> dict[str, Any]:
        """The next data message; raises TimeoutError when none comes within ``wait`` seconds."""
        message = await self.receive(wait)
        assert message["type"] == ("data" if self.legacy else "next"), message
        return dict(message["payload"])


PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/graphql"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_comment_added_arrives_in_commit_order(served: tuple[str, Starlette], protocol: str) -> None:
    server, app = served
    author = await register(server, "author")
    reader = await register(server, "reader")
    article = await post(
        server,
        'mutation { createArticle(input: {title: "Live", description: "d", body: "b"}) { id slug } }',
        token=author,
    )
    slug = article["createArticle"]["slug"]
    channel = comment_channel(pk_of(article["createArticle"]["id"], "Article"))
    async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
        client = Client(ws, protocol)
        assert (await client.init({"Authorization": f"Bearer {reader}"}))["type"] == "connection_ack"
        await client.subscribe(COMMENT_ADDED, {"slug": slug})
        await subscribed(app, channel)  # the subscription starts before the comments are written
        for i in range(3):
            await post(
                server,
                "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id } }",
                {"s": slug, "b": f"comment {i}"},
                author,
            )
        bodies = [(await client.next_payload())["data"]["commentAdded"]["body"] for _ in range(3)]
        assert bodies == ["comment 0", "comment 1", "comment 2"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_anonymous_subscriber_sees_articles_filtered_by_tag(served: tuple[str, Starlette], protocol: str) -> None:
    server, app = served
    author = await register(server, "writer")
    async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
        client = Client(ws, protocol)
        assert (await client.init())["type"] == "connection_ack"
        await client.subscribe(ARTICLE_PUBLISHED, {"tag": "graphql"})
        await subscribed(app, ARTICLE_PUBLISHED_CHANNEL)
        create = "mutation($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        await post(
            server, create, {"i": {"title": "Other", "description": "d", "body": "b", "tagList": ["rust"]}}, author
        )
        await post(
            server, create, {"i": {"title": "Mine", "description": "d", "body": "b", "tagList": ["graphql"]}}, author
        )
        payload = await client.next_payload()
        assert payload["data"]["articlePublished"] == {"title": "Mine", "tagList": ["graphql"]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bad_token_in_connection_init_closes_with_4403(server: str, protocol: str) -> None:
    async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert message["type"] != "connection_ack"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_unknown_slug_is_not_found(server: str) -> None:
    async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        client = Client(ws, "graphql-transport-ws")
        await client.init()
        await client.subscribe(COMMENT_ADDED, {"slug": "no-such-article"})
        message = await client.receive()
        assert message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
