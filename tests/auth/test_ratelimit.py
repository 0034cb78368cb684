"""Login, registration and refresh limits (auth/ratelimit.py) through /graphql, in either store.

Every test runs once per store and engine: ``[database]`` counts events in ``rate_limit_event``,
``[redis]`` in a real ``redis-server`` (``CONDUIT_CACHE_URL``), where the database must stay
untouched. The API must answer identically.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from auth import ratelimit
from db.models import rate_limit_event_table as events
from graph.settings import Settings
from tests.auth.test_auth import LOGIN, REFRESH
from tests.conftest import GQL, REGISTER, User, with_redis
from tests.redis import free_port
from tests.security.conftest import serving
from tests.security.test_cost_budget import metrics_of, redis_records, unavailable_count


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    """Where this run of the test counts events."""
    return str(request.param)


@pytest.fixture
def settings(settings: Settings, store: str, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings, with the events counted in ``store``."""
    if store == "redis":
        return with_redis(settings, request.getfixturevalue("redis_url"))
    return settings


async def login(gql: GQL, email: str, password: str) -> Any:
    return await gql(LOGIN, {"input": {"email": email, "password": password}})


async def event_rows(app: Any) -> dict[str, int]:
    """Events per bucket in ``rate_limit_event``."""
    async with app.state.conduit.db.engine.connect() as connection:
        rows = await connection.execute(sa.select(events.c.bucket, sa.func.count()).group_by(events.c.bucket))
        return {bucket: count for bucket, count in rows}


async def redis_events(settings: Settings) -> dict[str, int]:
    """Events per bucket in Redis (members of each ``conduit:limit:`` sorted set); ``{}`` without Redis."""
    if settings.cache_url is None:
        return {}
    async with aioredis.Redis.from_url(settings.cache_url.get_secret_value()) as redis:
        keys = [key.decode() async for key in redis.scan_iter(match=f"{ratelimit.KEY_PREFIX}*")]
        return {key.removeprefix(ratelimit.KEY_PREFIX): await redis.zcard(key) for key in keys}


async def test_ten_failed_logins_lock_the_email(
    gql: GQL, app: Any, settings: Settings, store: str, alice: User, bob: User
) -> None:
    for _ in range(10):
        assert (await login(gql, alice.email, "wrong-password")).codes == ["UNAUTHENTICATED"]
    limited = await login(gql, alice.email, alice.password)
    assert limited.codes == ["RATE_LIMITED"]
    assert 890 <= limited.errors[0]["extensions"]["retryAfter"] <= 900  # the first failure leaves in 15 min
    assert not (await login(gql, bob.email, bob.password)).errors  # per email
    counted = {"login:email:alice@example.com": 10, "login:addr:127.0.0.1": 10}
    database, in_redis = await event_rows(app), await redis_events(settings)
    if store == "redis":
        assert database == {} and in_redis == {**counted, "register:addr:127.0.0.1": 2}
    else:
        assert database == {**counted, "register:addr:127.0.0.1": 2} and in_redis == {}


async def test_the_window_slides(gql: GQL, alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five failures at 12:00 and five at 12:10 lock the email until the first five are 15 minutes old."""
    start = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    clock = [start]
    monkeypatch.setattr(ratelimit, "utcnow", lambda: clock[0])
    for minutes in (0, 10):
        clock[0] = start + dt.timedelta(minutes=minutes)
        for _ in range(5):
            assert (await login(gql, alice.email, "wrong-password")).codes == ["UNAUTHENTICATED"]
    clock[0] = start + dt.timedelta(minutes=14)
    limited = await login(gql, alice.email, alice.password)
    assert limited.codes == ["RATE_LIMITED"]
    assert limited.errors[0]["extensions"]["retryAfter"] == 60
    clock[0] = start + dt.timedelta(minutes=15, seconds=1)  # five left in the window
    assert not (await login(gql, alice.email, alice.password)).errors
    for _ in range(5):
        assert (await login(gql, alice.email, "wrong-password")).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, alice.email, alice.password)).codes == ["RATE_LIMITED"]


async def test_registrations_and_refreshes_are_limited_per_address(gql: GQL, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "REGISTRATIONS_PER_ADDRESS", ratelimit.Limit(2, dt.timedelta(hours=1)))
    monkeypatch.setattr(ratelimit, "REFRESHES_PER_ADDRESS", ratelimit.Limit(2, dt.timedelta(minutes=15)))
    refresh_tokens = []
    for name in ("carol", "dave"):
        variables = {"input": {"username": name, "email": f"{name}@example.com", "password": "password123"}}
        refresh_tokens.append((await gql.ok(REGISTER, variables))["register"]["refreshToken"])
    third = {"input": {"username": "erin", "email": "erin@example.com", "password": "password123"}}
    assert (await gql(REGISTER, third)).codes == ["RATE_LIMITED"]
    for token in refresh_tokens:
        assert (await gql.ok(REFRESH, {"refreshToken": token}))["refreshToken"]["user"]["username"]
    assert (await gql(REFRESH, {"refreshToken": "anything"})).codes == ["RATE_LIMITED"]


@pytest.mark.parametrize("store", ["database"])  # one run: the Redis URL is set below
async def test_unreachable_redis_counts_in_the_database(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Redis down: the lockout still holds, counted in the database, with one WARNING and a count per call."""
    caplog.set_level(logging.INFO, logger="conduit.redis")
    unreachable = with_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    async with serving(unreachable) as (app, gql):
        alice = {"username": "alice", "email": "alice@example.com", "password": "password123"}
        await gql.ok(REGISTER, {"input": alice})
        for _ in range(10):
            assert (await login(gql, alice["email"], "wrong-password")).codes == ["UNAUTHENTICATED"]
        assert (await login(gql, alice["email"], alice["password"])).codes == ["RATE_LIMITED"]
        assert await event_rows(app) == {
            "register:addr:127.0.0.1": 1,
            "login:email:alice@example.com": 10,
            "login:addr:127.0.0.1": 10,
        }
        # registering: a check and a count; each failed login: two checks and a count; the
        # locked one: the email's check
        assert unavailable_count(await metrics_of(app), "auth_limits") == 2 + 10 * 3 + 1
        assert len(redis_records(caplog, "redis_unavailable")) == 1
