"""A suspended or deleted user's open WebSockets close with 4403, on both protocols, across processes.

Against live servers (``tests.live``): on PostgreSQL the suspension goes through a second server
process on the same database, so the close crosses processes through ``LISTEN/NOTIFY``; on
SQLite (one process) through the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from db.broker import ARTICLE_PUBLISHED as ARTICLE_PUBLISHED_CHANNEL
from db.broker import SESSIONS_CLOSED
from db.engine import Database
from db.models import Role
from db.users import change_role
from graph.cli import main
from graph.settings import Settings
from tests.graph.test_subscriptions import ARTICLE_PUBLISHED, PROTOCOLS, Client, post, register, ws_url
from tests.live import live_app
from tests.waiting import subscribed

SUSPEND = 'mutation S($u: String!) { suspendUser(username: $u, reason: "spam") { username } }'


async def promote(url: str, username: str, role: Role) -> None:
    """Give ``username`` ``role`` as an operator would, outside the live servers."""
    db = Database(url)
    session = db.session()
    try:
        async with db.transaction(session):
            assert await change_role(session=session, username=username, role=role) is not None
    finally:
        await session.close()
        await db.dispose()


@contextlib.contextmanager
def two_processes(settings: Settings, engine_name: str) -> Iterator[tuple[str, Any, str]]:
    """The server the socket uses, its app, and the server the suspension goes through."""
    with contextlib.ExitStack() as stack:
        server, app = stack.enter_context(live_app(settings))
        other = stack.enter_context(live_app(settings))[0] if engine_name == "postgres" else server
        yield server, app, other


async def closed_with(client: Client) -> tuple[int, str]:
    """The close code and reason the server sends next (ignoring messages before it)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.receive(10)
    received = closed.value.rcvd
    assert received is not None
    return received.code, received.reason


async def open_subscription(server: str, app: Any, protocol: str, token: str, ws: Any, count: int = 1) -> Client:
    """A subscription to ``articlePublished`` on ``ws`` as ``token``'s user, once it is the ``count``-th in place."""
    client = Client(ws, protocol)
    assert (await client.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
    await client.subscribe(ARTICLE_PUBLISHED, {"tag": None})
    await subscribed(app, ARTICLE_PUBLISHED_CHANNEL, count)
    return client


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_suspension_closes_the_users_websockets(settings: Settings, engine_name: str, protocol: str) -> None:
    with two_processes(settings, engine_name) as (server, app, other):
        alice = await register(server, "alice")
        bob = await register(server, "bob")
        moderator = await register(server, "mod")
        await promote(settings.database_url, "mod", Role.MODERATOR)
        subprotocols = [websockets.Subprotocol(protocol)]
        async with (
            websockets.connect(ws_url(server), subprotocols=subprotocols) as alices,
            websockets.connect(ws_url(server), subprotocols=subprotocols) as bobs,
        ):
            alice_client = await open_subscription(server, app, protocol, alice, alices)
            bob_client = await open_subscription(server, app, protocol, bob, bobs, count=2)
            await post(other, SUSPEND, {"u": "alice"}, moderator)
            assert await closed_with(alice_client) == (4403, "account suspended")
            # bob's connection is still served
            create = 'mutation { createArticle(input: {title: "Still here", description: "d", body: "b"}) { slug } }'
            await post(server, create, token=bob)
            assert (await bob_client.next_payload())["data"]["articlePublished"]["title"] == "Still here"

        # and a new connection with the same token is refused
        async with websockets.connect(ws_url(server), subprotocols=subprotocols) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {alice}"}}))
            assert await closed_with(Client(ws, protocol)) == (4403, "Forbidden")


async def test_deleting_the_account_closes_its_websockets(settings: Settings, engine_name: str) -> None:
    protocol = "graphql-transport-ws"
    with two_processes(settings, engine_name) as (server, app, other):
        alice = await register(server, "alice")
        async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
            client = await open_subscription(server, app, protocol, alice, ws)
            deleted = await post(other, 'mutation { deleteViewer(password: "password123") }', token=alice)
            assert deleted == {"deleteViewer": True}
            assert await closed_with(client) == (4403, "account deleted")


async def test_a_suspension_from_the_command_line_is_refused_at_once(
    settings: Settings, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``conduit user suspend``: tokens refused at once; on PostgreSQL the WebSockets close too.

    On SQLite the command cannot reach the server's in-process broker (README, Command line):
    the socket then stays open, and only the token check and the refused login are checked.
    """
    monkeypatch.setenv("CONDUIT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(settings.jwt_secret_file))
    protocol = "graphql-transport-ws"
    with live_app(settings) as (server, app):
        alice = await register(server, "alice")
        async with websockets.connect(ws_url(server), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
            client = await open_subscription(server, app, protocol, alice, ws)
            assert await asyncio.to_thread(main, ["user", "suspend", "alice", "--reason", "spam"]) == 0
            if engine_name == "postgres":
                assert app.state.conduit.broker.subscriber_count(SESSIONS_CLOSED) == 1
                assert await closed_with(client) == (4403, "account suspended")
        with pytest.raises(AssertionError, match="account suspended"):
            await post(server, "{ viewer { username } }", token=alice)
