"""Property-based fuzzing of the whole schema over HTTP, with hypothesis-graphql.

Valid and invalid (``Mode.NEGATIVE``: one schema violation each) queries and mutations go to the
real app on a small seeded database, anonymously and as a signed-in viewer. Whatever the
document, the server must answer with JSON, never with a 5xx, in the GraphQL response shape:
an object with ``data`` and/or ``errors``, every error with a string ``message`` and an
``extensions.code`` from the contract's list, and no ``INTERNAL_SERVER_ERROR`` (that is an
exception nobody expected). Mutations really run: the database is the test's own.

Examples are fixed (``derandomize``), so a failure reproduces; hypothesis prints the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries

from auth.passwords import hash_password
from db.engine import Database
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, seed
from graph.app import create_app
from graph.settings import Settings
from tests.loop_thread import LoopThread

pytestmark = pytest.mark.slow  # hundreds of generated documents

SCHEMA = (Path(__file__).parents[2] / "schema.graphql").read_text()
CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "QUERY_TOO_COMPLEX", "RATE_LIMITED"})
EXAMPLES = 50


class Target:
    """The app under test, a client of it, and a signed-in viewer's token."""

    def __init__(self, app: Any) -> None:
        self.app = app
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.token = ""

    async def post(self, query: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post("/graphql", json={"query": query}, headers=headers)

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.state.conduit.broker.close()
        await self.app.state.conduit.db.dispose()


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Iterator[tuple[LoopThread, Target]]:
    thread = LoopThread()

    async def build() -> Target:
        db = Database(database_url)
        try:
            plan = SeedPlan(users=6, articles=12, comments=30, favorites=20, follows=8)
            await seed(db, plan, hash_password(DEMO_PASSWORD))
        finally:
            await db.dispose()
        settings = Settings(
            env="test",
            database_url=database_url,
            jwt_secret="test-secret-" + "x" * 40,
            jwt_secret_file=tmp_path / "secret",
            rate_limit_points=10**9,  # the budget has its own tests; here it must not stop the fuzzing
        )
        built = Target(create_app(settings))
        login = f'mutation {{ login(input: {{email: "{DEMO_EMAIL}", password: "{DEMO_PASSWORD}"}}) {{ token }} }}'
        built.token = (await built.post(login, None)).json()["data"]["login"]["token"]
        return built

    built = thread.run(build())
    try:
        yield thread, built
    finally:
        thread.run(built.close())
        thread.close()


def check_response(response: httpx.Response, query: str) -> dict[str, Any]:
    """The answer to any document: JSON, no 5xx, the GraphQL response shape, known error codes."""
    assert response.status_code < 500, (response.status_code, response.text, query)
    assert response.headers["content-type"].startswith("application/json"), (response.headers, query)
    body = response.json()
    assert isinstance(body, dict) and body, (body, query)
    assert set(body) <= {"data", "errors", "extensions"} and ("data" in body or "errors" in body), (body, query)
    assert body.get("data") is None or isinstance(body["data"], dict), (body, query)
    errors = body.get("errors", [])
    assert isinstance(errors, list), (body, query)
    if "data" not in body:
        assert errors, (body, query)
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("message"), str), (error, query)
        assert isinstance(error.get("extensions"), dict), (error, query)
        assert error["extensions"].get("code") in CODES, (error, query)
    return body


def fuzz(thread: LoopThread, target: Target, documents: st.SearchStrategy[str]) -> int:
    """Send every generated document anonymously and signed in; check each answer.

    Returns how many answers had ``data`` (the document was executed).
    """
    executed = 0

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(query=documents)
    def check(query: str) -> None:
        nonlocal executed
        for token in (None, target.token):
            executed += "data" in check_response(thread.run(target.post(query, token)), query)

    check()
    return executed


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_queries(target: tuple[LoopThread, Target], mode: Mode) -> None:
    thread, app = target
    executed = fuzz(thread, app, queries(SCHEMA, mode=mode))
    # valid documents must mostly run (or the fuzzing tests only the refusals); invalid ones never
    assert executed > EXAMPLES if mode is Mode.POSITIVE else executed == 0, executed


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_mutations(target: tuple[LoopThread, Target], mode: Mode) -> None:
    thread, app = target
    executed = fuzz(thread, app, mutations(SCHEMA, mode=mode))
    assert executed > EXAMPLES if mode is Mode.POSITIVE else executed == 0, executed
