"""GraphQL over WebSocket on ``/graphql``: Strawberry's ``graphql-transport-ws`` and ``graphql-ws`` handlers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage

from auth.backend import SUSPENDED, AuthenticationFailed, authenticate, header_from_params
from db.broker import SESSIONS_CLOSED, Broker
from graph.context import AppState, Context
from graph.observability import request_id
from graph.schema import ConduitSchema


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy ``graphql-ws`` protocol, closing with 4403 on a rejected ``connection_init``.

    Strawberry closes with 1011 there; the contract asks for 4403 on both protocols.
    """

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await super().handle_connection_init(message)
            return
        self.context.connection_params = payload
        try:
            await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as error:
            await self.send_message({"type": "connection_error", "payload": error.payload})
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True


logger = logging.getLogger("conduit.websocket")

CLOSED_BY_ACCOUNT = 4403
"""The close code of a connection whose user was suspended or deleted (as for a refused ``connection_init``)."""


class SignedInSockets:
    """The open WebSockets of signed-in viewers, closed when their user's sessions end.

    A suspension or a deletion publishes ``SESSIONS_CLOSED`` with the user id on the broker
    (after its commit; on PostgreSQL through ``NOTIFY``, so every process hears it); this
    process then closes that user's sockets with code 4403. The broker subscription starts
    with the first connection and is in place before it signs in; ``closures`` counts the
    events handled, so a connection that signed in while one arrived checks its user again
    (the event may have come before the socket was added).
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._sockets: dict[int, dict[int, WebSocket]] = defaultdict(dict)  # user id -> id(scope) -> socket
        self._owners: dict[int, int] = {}  # id(scope) -> user id
        self._listener: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None
        self.closures = 0

    def add(self, user_id: int, websocket: WebSocket) -> None:
        """Keep ``websocket`` as one of ``user_id``'s (after ``listen``)."""
        self._sockets[user_id][id(websocket.scope)] = websocket
        self._owners[id(websocket.scope)] = user_id

    def forget(self, scope: Scope) -> None:
        """Drop the socket of ``scope`` (its connection ended)."""
        user_id = self._owners.pop(id(scope), None)
        if user_id is None:
            return
        sockets = self._sockets.get(user_id, {})
        sockets.pop(id(scope), None)
        if not sockets:
            self._sockets.pop(user_id, None)

    def count(self, user_id: int) -> int:
        """How many open sockets of ``user_id`` this process holds (for tests and diagnostics)."""
        return len(self._sockets.get(user_id, ()))

    async def listen(self) -> None:
        """Make sure this process listens for ``SESSIONS_CLOSED``; returns once it does (or could not)."""
        if self._listener is None or self._listening is None or self._listener.done():
            self._listening = asyncio.Event()
            self._listener = asyncio.create_task(self._run(self._listening), name="conduit-sessions-closed")
        await self._listening.wait()

    async def _run(self, listening: asyncio.Event) -> None:
        try:
            async with self._broker.subscribe(SESSIONS_CLOSED) as events:
                listening.set()
                async for event in events:
                    self.closures += 1
                    try:
                        user_id = int(event.payload["user_id"])
                    except (KeyError, TypeError, ValueError):
                        logger.error("dropped a %s event without a user id: %r", SESSIONS_CLOSED, event.payload)
                        continue
                    await self.close_user(user_id, str(event.payload.get("reason") or SUSPENDED))
        except asyncio.CancelledError:
            raise
        except Exception:
            # connections are still served and tokens still checked per request; only closing
            # sockets on suspension waits until the next connection starts listening again
            logger.exception("cannot listen for closed sessions")
        finally:
            listening.set()

    async def close_user(self, user_id: int, reason: str = SUSPENDED) -> None:
        """Close every open socket of ``user_id`` in this process with 4403 and ``reason``."""
        for websocket in list(self._sockets.pop(user_id, {}).values()):
            self._owners.pop(id(websocket.scope), None)
            with contextlib.suppress(RuntimeError, OSError):  # already closing or closed
                await websocket.close(code=CLOSED_BY_ACCOUNT, reason=reason)

    async def close(self) -> None:
        """Stop listening (the app is shutting down)."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None


class SubscriptionEndpoint(GraphQL[Context, None]):
    """Strawberry's WebSocket transport (``graphql-transport-ws`` and ``graphql-ws``) on our context.

    The viewer comes from ``connection_init``'s ``Authorization`` entry; a bad token is
    refused with close code 4403, no token means an anonymous connection. A signed-in
    connection is closed with 4403 when its user is suspended or deleted (``SignedInSockets``).
    """

    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: ConduitSchema, state: AppState) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            allowed_origins=state.settings.cors_origins,
            connection_init_wait_timeout=dt.timedelta(seconds=10),
        )
        self.state = state
        self.sockets = SignedInSockets(state.broker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if scope["type"] == "websocket":
                self.sockets.forget(scope)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(app=self.state, request=request, request_id=request_id())

    async def on_ws_connect(self, context: Context) -> None:
        await self.sockets.listen()
        closures = self.sockets.closures
        try:
            header = header_from_params(context.connection_params)
            context.viewer = await authenticate(header, context.app.tokens, context.app.db)
            if context.viewer is None or not isinstance(context.request, WebSocket):
                return
            self.sockets.add(context.viewer.id, context.request)
            if self.sockets.closures != closures:
                # a user's sessions ended while this one signed in: maybe this user's, before the add
                await authenticate(header, context.app.tokens, context.app.db)
        except AuthenticationFailed as error:
            if isinstance(context.request, WebSocket):
                self.sockets.forget(context.request.scope)
            raise ConnectionRejectionError({"message": str(error), "extensions": {"code": "UNAUTHENTICATED"}}) from None
