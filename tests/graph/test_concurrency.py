"""Many concurrent requests on a small connection pool: they queue for connections, never starve."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from graph.app import create_app
from graph.settings import Settings
from tests.conftest import SECRET, User, create_article

QUERY = """
query Home { articles(first: 20) { edges { cursor node { slug tagList favorited favoritesCount
  author { username following } } } pageInfo { hasNextPage endCursor } totalCount } viewer { username } }
"""


async def test_authenticated_requests_do_not_starve_a_small_pool(
    database_url: str, tmp_path: Path, gql: Any, alice: User
) -> None:
    for i in range(3):
        await create_article(gql, alice, f"Article {i}", tagList=["a", "b"])
    # two connections and no overflow: a request that kept its sign-in connection while its
    # loaders wait for more would deadlock with the others until the pool timeout
    settings = Settings(
        env="test",
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_secret_file=tmp_path / "secret",
        db_pool_size=2,
        db_max_overflow=0,
        db_pool_timeout_seconds=20,
    )
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = {"Authorization": f"Bearer {alice.token}"}
            responses = await asyncio.gather(
                *(client.post("/graphql", json={"query": QUERY}, headers=headers) for _ in range(24))
            )
        for response in responses:
            assert response.status_code == 200
            body = response.json()
            assert "errors" not in body, body
            assert body["data"]["viewer"]["username"] == "alice"
            assert body["data"]["articles"]["totalCount"] == 3
    finally:
        await app.state.conduit.broker.close()
        await app.state.conduit.db.dispose()
