"""``X-RateLimit-*`` and ``Retry-After`` on GraphQL responses (graph/transport/ratelimit.py), seen over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from db import budget as budget_store
from graph.app import create_app
from graph.scalars import parse_datetime
from graph.settings import Settings
from tests.conftest import GQL, REGISTER

PAGE = "{ articles(first: 100) { nodes { comments(first: 5) { totalCount } } } }"  # 100 + 500 nodes: 6 points
ONE_POINT = "{ tags }"
RATE = "{ rateLimit { limit remaining used resetAt } }"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset")


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The budget's clock pinned mid-window, so no test sees its window reset halfway."""
    now = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
    monkeypatch.setattr(budget_store, "now", lambda: now)
    return now


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from ``settings`` with ``changes``."""
    app = create_app(settings.model_copy(update=changes))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await app.state.conduit.broker.close()
        await app.state.conduit.db.dispose()


def window_end(now: dt.datetime, seconds: int = 3600) -> int:
    start = int(now.timestamp()) // seconds * seconds
    return start + seconds


def rate(response: httpx.Response) -> dict[str, str]:
    return {
        name: response.headers[name] for name in (*RATE_HEADERS, "x-ratelimit-resource") if name in response.headers
    }


async def test_headers_follow_the_budget_as_it_is_spent(settings: Settings, frozen_now: dt.datetime) -> None:
    reset = str(window_end(frozen_now))
    async with serving(settings, rate_limit_points=10) as client:
        seen = []
        for _ in range(3):
            response = await client.post("/graphql", json={"query": ONE_POINT})
            assert response.status_code == 200 and "errors" not in response.json(), response.json()
            seen.append(rate(response))
        # GET answers carry them too, and agree with the rateLimit field
        got = await client.get("/graphql", params={"query": RATE})
        field = got.json()["data"]["rateLimit"]
    assert seen == [
        {
            "x-ratelimit-limit": "10",
            "x-ratelimit-remaining": str(10 - used),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": reset,
            "x-ratelimit-resource": "graphql",
        }
        for used in (1, 2, 3)
    ]
    assert rate(got) == {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "7",
        "x-ratelimit-used": "3",
        "x-ratelimit-reset": reset,
        "x-ratelimit-resource": "graphql",
    }
    assert field == {"limit": 10, "remaining": 7, "used": 3, "resetAt": field["resetAt"]}
    assert int(parse_datetime(field["resetAt"]).timestamp()) == int(reset)
    assert "retry-after" not in got.headers


async def test_refusal_for_cost_has_retry_after_and_no_remaining(settings: Settings, frozen_now: dt.datetime) -> None:
    async with serving(settings, rate_limit_points=8) as client:
        first = await client.post("/graphql", json={"query": PAGE})
        refused = await client.post("/graphql", json={"query": PAGE})
        # what is left still serves a cheaper operation
        cheap = await client.post("/graphql", json={"query": ONE_POINT})
    assert rate(first)["x-ratelimit-used"] == "6" and rate(first)["x-ratelimit-remaining"] == "2"
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert retry_after == window_end(frozen_now) - int(frozen_now.timestamp()) == 1800
    assert refused.headers["retry-after"] == str(retry_after)
    # the refusing statement reads nothing: remaining is reported as 0, used is not reported
    assert rate(refused) == {
        "x-ratelimit-limit": "8",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(window_end(frozen_now)),
        "x-ratelimit-resource": "graphql",
    }
    assert rate(cheap)["x-ratelimit-used"] == "7" and "retry-after" not in cheap.headers


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"query": "{ tags "}, 200),  # does not parse
        ({"query": "{ noSuchField }"}, 200),  # does not validate
        ({"query": 42}, 400),  # malformed request
    ],
    ids=["parse", "validation", "malformed"],
)
async def test_responses_before_the_budget_carry_what_is_known_without_sql(
    settings: Settings, frozen_now: dt.datetime, body: dict[str, Any], status: int
) -> None:
    async with serving(settings, rate_limit_points=10) as client:
        response = await client.post("/graphql", json=body)
        after = await client.post("/graphql", json={"query": ONE_POINT})
    assert response.status_code == status
    assert rate(response) == {
        "x-ratelimit-limit": "10",
        "x-ratelimit-reset": str(window_end(frozen_now)),
        "x-ratelimit-resource": "graphql",
    }
    assert rate(after)["x-ratelimit-used"] == "1"  # the refused request was not charged


async def test_an_invalid_token_still_gets_the_limit(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=10) as client:
        response = await client.post(
            "/graphql", json={"query": ONE_POINT}, headers={"Authorization": "Bearer not-a-token"}
        )
    assert response.status_code == 401
    assert response.headers["x-ratelimit-limit"] == "10" and "x-ratelimit-remaining" not in response.headers


async def test_login_limit_sends_retry_after(gql: GQL) -> None:
    await gql(REGISTER, {"input": {"username": "alice", "email": "alice@example.com", "password": "password123"}})
    login = 'mutation { login(input: {email: "alice@example.com", password: "wrong-password"}) { token } }'
    for _ in range(10):
        failed = await gql(login)
        assert failed.codes == ["UNAUTHENTICATED"] and "retry-after" not in failed.headers
    limited = await gql(login)
    assert limited.codes == ["RATE_LIMITED"]
    assert limited.headers["retry-after"] == str(limited.errors[0]["extensions"]["retryAfter"])
    assert int(limited.headers["retry-after"]) > 0
    # the cost budget's headers ride along: the mutation was charged before its resolver refused
    assert int(limited.headers["x-ratelimit-used"]) >= 12


async def test_no_headers_with_the_budget_off(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=0) as client:
        response = await client.post("/graphql", json={"query": ONE_POINT})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("x-ratelimit-")]


async def test_browsers_may_read_them_cross_origin(settings: Settings) -> None:
    origin = "https://app.example"
    async with serving(settings, cors_origins=[origin], rate_limit_points=10) as client:
        response = await client.post("/graphql", json={"query": ONE_POINT}, headers={"Origin": origin})
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {*RATE_HEADERS, "x-ratelimit-resource", "retry-after", "x-request-id"} <= exposed
    assert response.headers["x-ratelimit-used"] == "1"
