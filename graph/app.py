"""The Starlette application: ``/graphql`` (HTTP, WebSocket, playground), ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from graphql import DocumentNode
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage

from auth.backend import AuthenticationFailed, authenticate, header_from_params
from auth.passwords import use_profile
from auth.tokens import TokenService
from db.engine import Database, is_sqlite_url
from graph import budget
from graph.broker import Broker, InProcessBroker, PostgresBroker
from graph.compiler import CompiledExecutor
from graph.context import AppState, Context
from graph.http import GraphQLHTTPHandler
from graph.limits import operation_cost
from graph.nul import nul_variables
from graph.observability import Metrics, ObservabilityMiddleware, instrument_schema, metrics_endpoint, request_id
from graph.persisted import PersistedQueries
from graph.schema import ConduitSchema, create_schema
from graph.security import SecurityHeadersMiddleware
from graph.settings import Settings

logger = logging.getLogger("conduit")

READY_TIMEOUT = 0.8
STATIC = Path(__file__).with_name("static")
PLAYGROUND = STATIC / "graphiql.html"


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


async def healthz(_request: Request) -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


def readyz_endpoint(db: Database) -> Any:
    """``/readyz``: 200 when a trivial query succeeds, 503 otherwise (within ``READY_TIMEOUT`` seconds)."""

    async def readyz(_request: Request) -> Response:
        try:
            # a load balancer must learn of an unreachable database quickly, not after the connect timeout
            await asyncio.wait_for(db.ping(), timeout=READY_TIMEOUT)
        except Exception as error:
            logger.warning("readiness check failed: %s", type(error).__name__ + (f": {error}" if str(error) else ""))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return readyz


class BenchStats:
    """``GET /__stats`` for the benchmark harness (``CONDUIT_BENCH_STATS``): SQL statements and POST requests so far."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.sql = 0
        self.requests = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._count_sql)

    def _count_sql(self, *_args: Any) -> None:
        self.sql += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/__stats":
                await JSONResponse({"sql": self.sql, "requests": self.requests})(scope, receive, send)
                return
            if scope["method"] == "POST":
                self.requests += 1
        await self.app(scope, receive, send)


def compiled_executor(schema: ConduitSchema, settings: Settings) -> CompiledExecutor:
    """The compiled path for ``schema``, refusing (to the ordinary path) what the cost limit refuses.

    Within the limit, the operation is charged to the cost budget here, before it runs; the
    ordinary path reuses that charge when it answers instead (graph/budget.py).
    """

    async def within_limits(
        document: DocumentNode, operation_name: str | None, variables: dict[str, Any], context: Context
    ) -> bool:
        if nul_variables(variables):
            return False
        if operation_cost(schema._schema, document, operation_name, variables) > settings.max_cost:
            return False
        return await budget.compiled_check(context, schema._schema, document, operation_name, variables)

    is_sqlite = is_sqlite_url(settings.database_url) if settings.planned_execution else None
    return CompiledExecutor(schema, schema.validation_rules, settings.max_tokens, within_limits, is_sqlite=is_sqlite)


def default_broker(db: Database, settings: Settings) -> Broker:
    """``LISTEN/NOTIFY`` on PostgreSQL, so every process sees every event; in-process on SQLite."""
    if db.is_sqlite:
        return InProcessBroker()
    return PostgresBroker(db.url, connect_timeout=settings.db_connect_timeout_seconds)


def create_app(settings: Settings | None = None, broker: Broker | None = None) -> Starlette:
    """Build the app from ``settings`` (read from the environment when omitted).

    Nothing is created at import time, so every test can build its own app. The engine and
    broker are closed when the app shuts down. ``app.state.conduit`` is the ``AppState``.
    """
    settings = settings or Settings()
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    use_profile(settings.password_hash_profile)  # argon2 parameters for new password hashes
    tokens = TokenService(
        secret=settings.resolve_jwt_secret(),
        keys=settings.resolve_jwt_keys(),  # key rotation, when configured
        active_kid=settings.jwt_active_kid,
        access_ttl=dt.timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=dt.timedelta(days=settings.refresh_token_ttl_days),
    )
    state = AppState(settings=settings, db=db, tokens=tokens, broker=broker or default_broker(db, settings))
    if settings.rate_limit_points > 0:
        state.budget = budget.CostBudget(db, settings.rate_limit_points, settings.rate_limit_window_seconds)
    schema = create_schema(settings)
    metrics = Metrics(db.engine)
    instrument_schema(schema, metrics)
    playground = str(PLAYGROUND) if settings.playground_enabled and PLAYGROUND.exists() else None
    compiled = compiled_executor(schema, settings) if settings.compiled_execution else None
    state.compiled_stats = compiled.stats if compiled is not None else None
    persisted = PersistedQueries(
        trusted=schema.trusted_documents,
        only_trusted=settings.persisted_documents_only,
        cache_size=settings.apq_cache_size,
    )
    http = GraphQLHTTPHandler(schema, state, playground, compiled, persisted)
    websocket = SubscriptionEndpoint(schema, state)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await state.broker.close()
        await db.dispose()

    routes: list[Any] = [
        Route("/graphql", http.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        WebSocketRoute("/graphql", websocket),
        Route("/healthz", healthz),
        Route("/readyz", readyz_endpoint(db)),
        Route("/metrics", metrics_endpoint(metrics)),
    ]
    if playground is not None:
        routes.append(Mount("/static/graphiql", app=StaticFiles(directory=STATIC / "graphiql"), name="graphiql"))
    # outermost, so every response (CORS preflights and 500s included) carries the security
    # headers and the request id
    middleware = [
        Middleware(SecurityHeadersMiddleware, production=settings.is_production),
        Middleware(ObservabilityMiddleware, metrics=metrics, routes=routes),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
                expose_headers=["X-Request-ID"],
                max_age=600,
            )
        )
    if settings.bench_stats:
        middleware.append(Middleware(BenchStats, db=db))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.conduit = state
    app.state.metrics = metrics
    return app
