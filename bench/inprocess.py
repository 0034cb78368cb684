"""Server-side cost of one benchmark operation, in process: the ASGI app driven directly, no HTTP server.

    PYTHONPATH=. .venv/bin/python bench/inprocess.py DB META OP [N] [--auth] [--no-budget] [--cache-url=URL]
        [--no-response-cache] [--profile] [--statements]

DB: a SQLite file of the benchmark's data (a copy of bench/.data/bench.db, upgraded with
``conduit db upgrade``), or a database URL (``postgresql://...``, e.g. bench/run_pg.sh's cluster);
META: the meta JSON bench/run.sh wrote for it (``bench/.data/runs/*/meta.json``).
Prints milliseconds per request (mean of N, default 1000, after 200 to warm up), wall and this
process's CPU (the latter leaves out the database's and Redis's own work, and other processes on
a shared machine); ``--profile`` adds cProfile's 40 costliest functions; ``--no-budget`` turns
the cost budget off (no charge, no write per request), to see what it costs; ``--cache-url``
keeps it, and the response cache, in that Redis instead (``CONDUIT_CACHE_URL``);
``--no-response-cache`` turns the response cache off (every request executes; with it on, every
request but the first is a hit); ``--statements`` adds the SQL statements per request (each one a
round trip on PostgreSQL) and prints those of one request. Uvicorn's HTTP parsing is not in the figure.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import orjson
from pydantic import SecretStr
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from asgi_client import post_graphql as call  # bench/ is the script's own directory

from graph.app import create_app
from graph.settings import Settings

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
DB, META, OP = ARGS[0], ARGS[1], ARGS[2]
N = int(ARGS[3]) if len(ARGS) > 3 else 1000
METADATA = json.loads(Path(META).read_text())


async def main() -> None:
    meta = METADATA
    points = 0 if "--no-budget" in sys.argv else 10**9
    cache_url = next((a.partition("=")[2] for a in sys.argv if a.startswith("--cache-url=")), None)
    url = DB if "://" in DB else f"sqlite:///{DB}"
    settings = Settings(
        env="production",
        database_url=url,
        jwt_secret="x" * 64,
        rate_limit_points=points,
        response_cache="--no-response-cache" not in sys.argv,
    )
    if cache_url:
        settings = settings.model_copy(update={"cache_url": SecretStr(cache_url)})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        headers: list[tuple[bytes, bytes]] = []
        if "--auth" in sys.argv:
            email = meta["f1_email"] if OP == "F1" else meta["m1_email"]
            login = f'mutation {{ login(input: {{email: "{email}", password: "conduit-demo"}}) {{ token }} }}'
            token = orjson.loads((await call(app, orjson.dumps({"query": login}), []))[1]["body"])
            headers = [(b"authorization", f"Bearer {token['data']['login']['token']}".encode())]
        body = orjson.dumps(load.build_body(OP, "ours", meta))
        print((await call(app, body, headers))[1]["body"][:120])
        statements: list[str] = []
        if "--statements" in sys.argv:
            event.listen(
                app.state.conduit.db.engine.sync_engine,
                "before_cursor_execute",
                lambda _c, _cu, sql, *_rest: statements.append(sql),
            )
            await call(app, body, headers)
            for sql in statements:
                print(f"  {sql[:300]}")
            statements.clear()
        for _ in range(200):
            await call(app, body, headers)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(N):
            await call(app, body, headers)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        counted = f", {len(statements) / (N + 200):.2f} statements" if "--statements" in sys.argv else ""
        per_request = f"{wall / N * 1e3:.3f} ms per request ({cpu / N * 1e3:.3f} ms CPU{counted})"
        print(f"{OP}: {per_request}, server side, in process")
        if "--profile" in sys.argv:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(N):
                await call(app, body, headers)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative" if "--cumulative" in sys.argv else "tottime").print_stats(40)


asyncio.run(main())
