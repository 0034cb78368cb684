"""The Starlette application: ``/graphql`` (HTTP, WebSocket, playground), ``/healthz``, ``/readyz``, ``/metrics``.

And the reference pages ``/docs`` and ``/api/docs`` (``graph/docs.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from auth.mail import MailWorker
from auth.passwords import use_profile
from auth.ratelimit import RedisCounters
from auth.tokens import TokenService
from db.broker import Broker, InProcessBroker, PostgresBroker
from db.budget import Budget, BudgetStore, RedisBudgetStore
from db.engine import Database
from db.redis import RedisClient
from graph.admission import AdmissionPipeline, admission_steps
from graph.caches import APQ, PLANS, TOKENS, CacheCollector, Caches
from graph.context import AppState
from graph.docs import API_DOCS, API_DOCS_CSP, DOCS_CSP, DOCS_SITE, PolicyStaticFiles, to_folder
from graph.execution.executor import ExecutionPaths, OperationExecutor
from graph.execution.pipeline import RequestPipeline
from graph.observability import (
    Metrics,
    ObservabilityMiddleware,
    SubscriptionGauge,
    metrics_endpoint,
    register_subscription_fields,
)
from graph.observability.bench import BenchStats
from graph.observability.listener import MetricsListener
from graph.observability.tracing import Tracing, tracing_from_environment
from graph.responses.setup import response_cache
from graph.schema import create_schema
from graph.settings import Settings
from graph.transport.compression import CompressionMiddleware
from graph.transport.headers import SecurityHeadersMiddleware
from graph.transport.health import healthz, readyz_endpoint
from graph.transport.http import GraphQLHTTPHandler, GraphQLShortcut
from graph.transport.persisted import PersistedQueries
from graph.transport.ratelimit import EXPOSED_HEADERS as RATE_LIMIT_HEADERS
from graph.transport.rest import RestAPI
from graph.transport.secrets import SecretSelections
from graph.transport.websocket import SubscriptionEndpoint

logger = logging.getLogger("conduit")

STATIC = Path(__file__).with_name("static")
PLAYGROUND = STATIC / "graphiql.html"


def default_broker(db: Database, settings: Settings) -> Broker:
    """``LISTEN/NOTIFY`` on PostgreSQL, so every process sees every event; in-process on SQLite."""
    if db.is_sqlite:
        return InProcessBroker()
    return PostgresBroker(db.url, connect_timeout=settings.db_connect_timeout_seconds)


def create_app(
    settings: Settings | None = None, broker: Broker | None = None, tracing: Tracing | None = None
) -> Starlette:
    """Build the app from ``settings`` (read from the environment when omitted).

    Nothing is created at import time, so every test can build its own app. The engine,
    broker and Redis client are closed when the app shuts down. ``app.state.conduit`` is the ``AppState``.
    ``tracing`` is for tests (an in-memory exporter); otherwise only the ``OTEL_*`` variables
    switch tracing on (``graph/observability/tracing.py``), and ``app.state.tracing`` is it or ``None``.
    """
    settings = settings or Settings()
    tracing = tracing or tracing_from_environment()
    tracer = tracing.tracer if tracing is not None else None
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    if tracing is not None:
        tracing.instrument(db)
    use_profile(settings.password_hash_profile)  # argon2 parameters for new password hashes
    caches = Caches.from_settings(settings)
    tokens = TokenService(
        secret=settings.resolve_jwt_secret(),
        keys=settings.resolve_jwt_keys(),  # key rotation, when configured
        active_kid=settings.jwt_active_kid,
        access_ttl=dt.timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=dt.timedelta(days=settings.refresh_token_ttl_days),
        verified=caches[TOKENS],
    )
    mail = MailWorker(db, settings.mail_config())
    state = AppState(
        settings=settings,
        db=db,
        tokens=tokens,
        broker=broker or default_broker(db, settings),
        caches=caches,
        mail=mail,
    )
    metrics = Metrics(db.engine)
    if settings.cache_url is not None:
        # the budget and the auth rate limits in Redis, off the primary database (issue 13)
        state.redis = RedisClient(
            settings.cache_url.get_secret_value(),
            timeout=settings.cache_timeout_seconds,
            on_unavailable=lambda use: metrics.redis_unavailable.labels(use).inc(),
        )
        state.counters = RedisCounters(state.redis)
    budget: Budget | None = None
    if settings.rate_limit_points > 0:
        points, window = settings.rate_limit_points, settings.rate_limit_window_seconds
        budget = RedisBudgetStore(state.redis, points, window) if state.redis else BudgetStore(db, points, window)
    state.budget = budget
    schema = create_schema(settings)
    metrics.register(CacheCollector(caches))
    register_subscription_fields(schema, metrics)
    state.admission = AdmissionPipeline(admission_steps(schema, settings, caches, budget), tracer)
    state.execution = ExecutionPaths(metrics)
    executor = OperationExecutor(
        schema,
        caches[PLANS] if settings.planned_execution else None,
        state.execution,
        is_sqlite=db.is_sqlite,
        hide_suggestions=settings.field_suggestions_hidden,
        tracer=tracer,
    )
    pipeline = RequestPipeline(state.admission, executor, SubscriptionGauge(metrics), tracer)
    schema.pipeline = pipeline
    responses = response_cache(settings, schema._schema, state, metrics)
    if responses is not None:
        pipeline.after_mutation = responses.after_mutation
    playground = str(PLAYGROUND) if settings.playground_enabled and PLAYGROUND.exists() else None
    persisted = PersistedQueries(
        trusted=schema.trusted_documents,
        only_trusted=settings.persisted_documents_only,
        store=caches[APQ],
    )
    http = GraphQLHTTPHandler(
        state, pipeline, playground, persisted, budget, SecretSelections(schema._schema), responses
    )
    websocket = SubscriptionEndpoint(schema, state)
    rest = RestAPI(state, pipeline, schema._schema, budget)  # /api: RealWorld's REST API (issue 12)
    if schema.trusted_documents is not None:  # /api's stored operations are the server's own: trusted
        schema.trusted_documents.trust(rest.operations.values())

    # /metrics off the public port when CONDUIT_METRICS_PORT is set: started with the app, in each worker
    listener = None
    if settings.metrics_port is not None:
        listener = MetricsListener(metrics, settings.metrics_host, settings.metrics_port)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if listener is not None:
            listener.start()
        if mail.config.smtp is None and settings.is_production:
            # `conduit serve` refuses this; an app built some other way keeps the mails queued
            # (never logged: they carry live reset links) until a server with SMTP sends them
            logger.warning("CONDUIT_SMTP_URL is not set: account mails stay unsent in mail_outbox")
        else:
            mail.start()
        async with responses.running() if responses is not None else contextlib.nullcontext():
            yield
        await mail.stop()
        await websocket.sockets.close()
        if listener is not None:
            await listener.stop()
        await state.broker.close()
        if state.redis is not None:
            await state.redis.close()
        await db.dispose()
        if tracing is not None:  # export what is queued; on a thread, as it waits for the collector
            await asyncio.to_thread(tracing.shutdown)

    routes: list[Any] = [
        # first: the router tries the routes in order on every request, and nearly all are these
        Route("/graphql", http, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        WebSocketRoute("/graphql", websocket),
        # the references (graph/docs.py), in every mode, introspection or not; /api/docs before
        # anything else under /api, so it wins over the REST API's routes
        Route("/api/docs", to_folder),
        Mount("/api/docs", app=PolicyStaticFiles(API_DOCS, API_DOCS_CSP), name="api-docs"),
        Route("/docs", to_folder),
        Mount("/docs", app=PolicyStaticFiles(DOCS_SITE, DOCS_CSP), name="docs"),
        Route("/healthz", healthz),
        Route("/readyz", readyz_endpoint(db)),
    ]
    routes += rest.routes()  # explicit paths under /api, no catch-all: /api/docs may be added beside them
    if listener is None:  # else served by the listener only: 404 here
        routes.append(Route("/metrics", metrics_endpoint(metrics)))
    if playground is not None:
        routes.append(Mount("/static/graphiql", app=StaticFiles(directory=STATIC / "graphiql"), name="graphiql"))
    # outermost, so every response (CORS preflights and 500s included) carries the security
    # headers and the request id
    middleware = [
        Middleware(SecurityHeadersMiddleware, production=settings.is_production),
        Middleware(ObservabilityMiddleware, metrics=metrics, routes=routes, tracer=tracer),
    ]
    if settings.compression:
        # inside the observability middleware: the access log and metrics see what is sent
        middleware.append(Middleware(CompressionMiddleware))
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],  # PUT and DELETE: /api
                # X-Requested-With: RealWorld's suite and older (jQuery-era) frontends of /api send it
                allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID", "X-Requested-With"],
                # readable by a page's script: the request id and the rate-limit headers
                expose_headers=["X-Request-ID", *RATE_LIMIT_HEADERS],
                max_age=600,
            )
        )
    if settings.bench_stats:
        middleware.append(Middleware(BenchStats, db=db))
    middleware.append(Middleware(GraphQLShortcut, endpoint=http))  # innermost: past every middleware above
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.conduit = state
    app.state.metrics = metrics
    app.state.tracing = tracing
    return app
