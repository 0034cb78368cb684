"""Helpers for the attack tests: the audit records of a test, database snapshots, forged tokens."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.models import metadata
from graph.app import create_app
from graph.settings import Settings
from tests.conftest import GQL, Response

UPDATE_BIO = "mutation Update($bio: String) { updateViewer(input: {bio: $bio}) { bio } }"
VIEWER = "{ viewer { id username } }"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(part: dict[str, Any]) -> str:
    return b64url(json.dumps(part).encode())


def unpadded_json(segment: str) -> dict[str, Any]:
    """A JWT segment (base64url, unpadded) decoded as JSON."""
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


class AuditLog:
    """The ``conduit.audit`` records emitted while the test runs."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def records(self, event: str | None = None) -> list[logging.LogRecord]:
        return [
            record
            for record in self.caplog.records
            if record.name == "conduit.audit" and (event is None or getattr(record, "event", None) == event)
        ]

    def one(self, event: str) -> dict[str, Any]:
        """The attributes of the only record of ``event``; fails when there is none or more than one."""
        records = self.records(event)
        assert len(records) == 1, [record.getMessage() for record in self.records()]
        return records[0].__dict__

    def clear(self) -> None:
        self.caplog.clear()


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> AuditLog:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    return AuditLog(caplog)


def assert_request_of(record: dict[str, Any], response: Response) -> None:
    """The audit ``record`` was emitted while the server handled the request ``response`` answers."""
    assert record["request_id"], record
    assert record["request_id"] == response.headers["x-request-id"]


async def snapshot(app: Any, *, budget: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every application table, in primary-key order.

    ``cost_budget`` only with ``budget=True``: every operation that runs is charged to it
    (graph/admission/budget.py), whatever its resolvers decide.
    """
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with app.state.conduit.db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name == "cost_budget" and not budget:
                continue
            rows = await connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(row) for row in rows]
    return tables


async def attack(gql: GQL, app: Any, authorization: str) -> Response:
    """Try to change the viewer's bio with ``authorization``; assert 401 and an unchanged database."""
    before = await snapshot(app)
    response = await gql(UPDATE_BIO, {"bio": "pwned"}, Authorization=authorization)
    assert response.status == 401, response.body
    assert response.codes == ["UNAUTHENTICATED"]
    assert "data" not in response.body
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert await snapshot(app) == before
    return response


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Any, GQL]]:
    """A fresh app built from ``settings`` and a client for it (a server restart, in effect)."""
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, GQL(http)
    finally:
        await app.state.conduit.broker.close()
        if app.state.conduit.redis is not None:
            await app.state.conduit.redis.close()
        await app.state.conduit.db.dispose()
