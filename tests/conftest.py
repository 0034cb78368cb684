"""Fixtures: a fresh migrated database per test, the real ASGI app, an HTTP client, users.

Every test that touches the database runs twice, on SQLite and on PostgreSQL (test ids end in
``[sqlite]`` / ``[postgres]``; ``-k sqlite`` picks one engine, and ``-m "not slow"`` leaves out the
PostgreSQL runs with the other slow tests). Each run gets its own database,
copied from a template the Alembic migrations built once per session (migrating per test
would cost more than the tests themselves): a file copy on SQLite, ``CREATE DATABASE ...
TEMPLATE`` on a throwaway PostgreSQL cluster that the session starts on 127.0.0.1.
"""

from __future__ import annotations

import base64
import itertools
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event

from db.migrate import upgrade
from graph.app import create_app
from graph.settings import Settings
from tests.postgres import Cluster
from tests.redis import RedisServer

SECRET = "test-secret-" + "x" * 40


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Undo what a test's ``conduit serve`` did to logging (``dictConfig``: stderr handlers, levels).

    Otherwise the root logger keeps a handler on the stream pytest captured for that test,
    and a later log line (aiosqlite's thread, say) fails with "I/O operation on closed file".
    """
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled) for logger in loggers]
    yield
    for logger, handlers, level, propagate, disabled in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole session; fails (never skips) when the server is missing."""
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` for the whole session (``tests/redis.py``); fails (never skips) when missing."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis, emptied for this test (``CONDUIT_CACHE_URL``)."""
    redis_server.flush()
    return redis_server.url()


REDIS_TIMEOUT_SECONDS = 5.0
"""The tests' ``CONDUIT_CACHE_TIMEOUT_SECONDS``: the timeout counts the event loop's own delays,
and on a loaded machine 25 concurrent requests can keep a connect waiting longer than the default."""


def with_redis(settings: Settings, url: str, **changes: Any) -> Settings:
    """``settings`` with the budget and auth limits in the Redis at ``url`` (``CONDUIT_CACHE_URL``), and ``changes``."""
    update = {"cache_url": SecretStr(url), "cache_timeout_seconds": REDIS_TIMEOUT_SECONDS, **changes}
    return settings.model_copy(update=update)


PG_TEMPLATE = "conduit_template"


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Cluster) -> str:
    """The name of a database the migrations built, to copy per test."""
    pg_cluster.sql(f"CREATE DATABASE {PG_TEMPLATE}")
    upgrade(pg_cluster.url(PG_TEMPLATE))
    return PG_TEMPLATE


_pg_databases = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The database engine of this run of the test."""
    return str(request.param)


@pytest.fixture
def database_url(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    if engine_name == "sqlite":
        path = tmp_path / "conduit.db"
        shutil.copy(request.getfixturevalue("template_db"), path)
        yield f"sqlite:///{path}"
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    template = request.getfixturevalue("pg_template")
    name = f"test_{next(_pg_databases)}"
    cluster.sql(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield cluster.url(name)
    cluster.sql(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "secret",
        # argon2-cffi's profile for test suites: sign-ups cost microseconds, not 50 ms
        password_hash_profile="cheapest",
        # off but in tests/graph/test_response_cache.py: the other tests look at what runs behind it
        # (charges, statements, execution paths), which a hit skips
        response_cache=False,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    yield application
    state = application.state.conduit
    await state.broker.close()
    if state.redis is not None:
        await state.redis.close()
    await state.db.dispose()


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]

    def error_fields(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = self.errors[0]["extensions"].get("fields", {})
        return fields


class GQL:
    """A tiny GraphQL client over the real HTTP endpoint."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None, **headers: str
    ) -> Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return Response(response.status_code, response.json(), response.headers)

    async def ok(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        """The data of an operation that must succeed."""
        response = await self(query, variables, token)
        assert response.status == 200, response.body
        assert not response.errors, response.errors
        return response.data


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GQL:
    return GQL(client)


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { token refreshToken user { id username email role } }
}
"""


@dataclass
class User:
    username: str
    email: str
    password: str
    token: str
    refresh_token: str
    id: str


class Users:
    """Registers users through the API."""

    def __init__(self, gql: GQL) -> None:
        self.gql = gql

    async def register(self, username: str, password: str = "password123", email: str | None = None) -> User:
        email = email or f"{username}@example.com"
        data = await self.gql.ok(REGISTER, {"input": {"username": username, "email": email, "password": password}})
        payload = data["register"]
        return User(username, email, password, payload["token"], payload["refreshToken"], payload["user"]["id"])


@pytest.fixture
def users(gql: GQL) -> Users:
    return Users(gql)


@pytest.fixture
async def alice(users: Users) -> User:
    return await users.register("alice")


@pytest.fixture
async def bob(users: Users) -> User:
    return await users.register("bob")


CREATE_ARTICLE = """
mutation Create($input: CreateArticleInput!) {
  createArticle(input: $input) { id slug title description body tagList createdAt updatedAt
    favorited favoritesCount author { username } }
}
"""


async def create_article(gql: GQL, user: User, title: str = "Hello World", **fields: Any) -> dict[str, Any]:
    payload = {"title": title, "description": "about it", "body": "the body", **fields}
    data = await gql.ok(CREATE_ARTICLE, {"input": payload}, user.token)
    article: dict[str, Any] = data["createArticle"]
    return article


@contextmanager
def sql_of(app: Any) -> Iterator[list[str]]:
    """The SQL statements ``app`` sends inside the block."""
    seen: list[str] = []
    engine = app.state.conduit.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def statements(app: Any) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the test runs."""
    with sql_of(app) as seen:
        yield seen


def pk_of(global_id: str) -> int:
    """The integer primary key inside a ``base64("User:<pk>")`` global id."""
    type_name, _, pk = base64.b64decode(global_id).decode().partition(":")
    assert type_name == "User"
    return int(pk)


async def set_role(app: Any, username: str, role: str) -> None:
    """Change a role the way an operator does (``conduit user set-role``), outside the API."""
    from db.models import Role
    from db.users import change_role

    db = app.state.conduit.db
    session = db.session()
    try:
        async with db.transaction(session):
            assert await change_role(session=session, username=username, role=Role(role)) is not None
    finally:
        await session.close()


@dataclass(frozen=True)
class PathCounts:
    """What ``app``'s execution paths answered so far (``AppState.execution``, also on ``/metrics``).

    ``planned``: answers from planned SQL; ``ordinary``: from graphql-core; ``fallbacks``:
    operations planned SQL handed on, when planning or at run time.
    """

    planned: int
    ordinary: int
    fallbacks: int


def path_counts(app: Any) -> PathCounts:
    """``app``'s counters now (see ``PathCounts``)."""
    execution = app.state.conduit.execution
    answered = execution.answered
    return PathCounts(
        planned=answered["planned"],
        ordinary=answered["ordinary"],
        fallbacks=sum(execution.fallbacks.values()),
    )
