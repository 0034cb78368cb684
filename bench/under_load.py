"""CPU per request of one benchmark operation, in process, 16 requests at a time: ours or the floor's.

    PYTHONPATH=. taskset -c 1 .venv/bin/python bench/under_load.py SERVER DB META OP [N] [--auth]

SERVER: ``ours`` or ``floor`` (``../shared/bench/floor.py``, the same ASGI app ``bench/run.sh``
starts); DB: a SQLite file of the benchmark's data upgraded with ``conduit db upgrade`` (a copy
of ``bench/.data/bench.db``), or for ``ours`` a database URL (``postgresql://...``); META: the
meta JSON ``bench/run.sh`` wrote. Drives the app's ASGI callable on uvloop with 16 concurrent
tasks, N requests a round (default 4000) after 960 to warm up, five rounds, and prints the
lowest CPU milliseconds per request of this process, its threads included (aiosqlite's, for
the floor). Pin it to one CPU, as ``bench/run.sh`` pins each server: the floor's thread
handoffs then cost what they cost under load (unpinned, in process, it measured 0.39-0.45 ms
for Q2 against 0.13 pinned). Uvicorn's HTTP parsing is in neither figure. Ours runs with the
response cache off and a budget large enough never to refuse; the floor's viewer is the
``x-user-id`` header, as in the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from asgi_client import post_graphql as call  # bench/ is the script's own directory

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SERVER, DB, META, OP = ARGS[0], ARGS[1], ARGS[2], ARGS[3]
N = int(ARGS[4]) if len(ARGS) > 4 else 4000
AUTH = "--auth" in sys.argv
METADATA = json.loads(Path(META).read_text())
DB_URL = DB if "://" in DB else f"sqlite:///{Path(DB).resolve()}"
CONCURRENCY = 16
ROUNDS = 5


async def drive(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> float:
    """The lowest CPU ms per request over ``ROUNDS`` rounds of ``N`` requests, ``CONCURRENCY`` at a time."""

    async def worker(requests: int) -> None:
        for _ in range(requests):
            await call(app, body, headers)

    for _ in range(3):
        await asyncio.gather(*[worker(20) for _ in range(CONCURRENCY)])
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        await asyncio.gather(*[worker(N // CONCURRENCY) for _ in range(CONCURRENCY)])
        best = min(best, (time.process_time() - started) / N * 1e3)
    return best


async def main() -> None:
    meta = METADATA
    body = orjson.dumps(load.build_body(OP, "ours", meta))
    if SERVER == "floor":
        os.environ["DATABASE_URL"] = f"sqlite+aiosqlite:///{DB}"
        import floor  # reads DATABASE_URL on import

        viewer = str(meta["f1_user_id"] if OP == "F1" else meta["m1_user_id"]).encode()
        async with floor.lifespan(None):
            cpu = await drive(floor.app, body, [(b"x-user-id", viewer)] if AUTH else [])
    else:
        from graph.app import create_app
        from graph.settings import Settings

        settings = Settings(
            env="production", database_url=DB_URL, jwt_secret="x" * 64, rate_limit_points=10**9, response_cache=False
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            headers: list[tuple[bytes, bytes]] = []
            if AUTH:
                email = meta["f1_email"] if OP == "F1" else meta["m1_email"]
                login = f'mutation {{ login(input: {{email: "{email}", password: "conduit-demo"}}) {{ token }} }}'
                token = orjson.loads((await call(app, orjson.dumps({"query": login}), []))[1]["body"])
                headers = [(b"authorization", f"Bearer {token['data']['login']['token']}".encode())]
            cpu = await drive(app, body, headers)
    print(
        f"{OP} {'signed in' if AUTH else 'anonymous'}, {SERVER}: {cpu:.3f} ms of CPU per request (lowest of {ROUNDS})"
    )


uvloop.run(main())
