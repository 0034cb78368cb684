"""GraphQL over WebSocket on ``/graphql``: Strawberry's ``graphql-transport-ws`` and ``graphql-ws`` handlers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage

from auth.backend import AuthenticationFailed, authenticate, header_from_params
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


class SubscriptionEndpoint(GraphQL[Context, None]):
    """Strawberry's WebSocket transport (``graphql-transport-ws`` and ``graphql-ws``) on our context.

    The viewer comes from ``connection_init``'s ``Authorization`` entry; a bad token is
    refused with close code 4403, no token means an anonymous connection.
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

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(app=self.state, request=request, request_id=request_id())

    async def on_ws_connect(self, context: Context) -> None:
        try:
            header = header_from_params(context.connection_params)
            context.viewer = await authenticate(header, context.app.tokens, context.app.db)
        except AuthenticationFailed as error:
            raise ConnectionRejectionError({"message": str(error), "extensions": {"code": "UNAUTHENTICATED"}}) from None
