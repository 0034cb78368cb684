"""What the middleware stack costs one benchmark operation, in process: the app against its router.

    PYTHONPATH=. .venv/bin/python bench/middleware.py DB META OP [N]

DB: a SQLite file of the benchmark's data upgraded with ``conduit db upgrade`` (as for
``bench/inprocess.py``); META: the meta JSON ``bench/run.sh`` wrote. Sends OP anonymously N
times (default 1000) per round, six rounds alternating between the whole app (security headers,
observability, compression, Starlette's error handling, the router) and its router alone, with
the response cache off so every request executes; prints the median CPU milliseconds per
request of each and their difference, the stack's own cost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from asgi_client import post_graphql as call  # bench/ is the script's own directory

from graph.app import create_app
from graph.settings import Settings

DB, META, OP = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
METADATA = json.loads(Path(META).read_text())


async def main() -> None:
    url = DB if "://" in DB else f"sqlite:///{DB}"
    settings = Settings(
        env="production", database_url=url, jwt_secret="x" * 64, rate_limit_points=10**9, response_cache=False
    )
    app = create_app(settings)
    body = orjson.dumps(load.build_body(OP, "ours", METADATA))
    async with app.router.lifespan_context(app):
        targets: dict[str, Any] = {"app": app, "router": app.router}
        for _ in range(300):
            await call(app, body, [])
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        for _round in range(6):
            for name, target in targets.items():
                started = time.process_time()
                for _ in range(N):
                    await call(target, body, [])
                cpu[name].append((time.process_time() - started) / N * 1e3)
    whole, router = statistics.median(cpu["app"]), statistics.median(cpu["router"])
    print(f"{OP}: app {whole:.3f} ms, router {router:.3f} ms, middleware {whole - router:.3f} ms CPU per request")


asyncio.run(main())
