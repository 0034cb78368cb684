"""What tracing costs one benchmark operation, in process: apps with and without it, interleaved.

    PYTHONPATH=. .venv/bin/python bench/tracing.py DB META [OP] [--variants off,noop,on] [--batches 40] [--batch 200]

DB and META as for ``bench/inprocess.py``. Every variant is an app of its own on the same
database, built in this one process, and the variants take turns, ``--batch`` requests each,
``--batches`` times, so a machine shared with other work slows them alike. Prints, per variant,
the median over batches of the wall time and of this process's CPU time per request (CPU time
is the steadier figure on a busy machine), in milliseconds.

- ``off``: ``create_app(settings)`` with no ``OTEL_*`` variable set: tracing off, as by default.
  The only variant the code before tracing has, so ``--variants off`` under that checkout's
  ``PYTHONPATH`` measures "before".
- ``noop``: tracing on with the ``always_off`` sampler: every hook runs, the spans are the API's
  non-recording ones.
- ``on``: tracing on, every span recorded and handed to a processor that drops it (the SDK's
  span work without an exporter's).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from asgi_client import post_graphql, response_body  # bench/ is the script's own directory

from graph.app import create_app
from graph.settings import Settings

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
OPTIONS = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
DB, META = ARGS[0], ARGS[1]
OP = ARGS[2] if len(ARGS) > 2 else "Q1"
VARIANTS = OPTIONS.get("variants", "off,noop,on").split(",")
BATCHES, BATCH = int(OPTIONS.get("batches", "40")), int(OPTIONS.get("batch", "200"))


async def call(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One POST /graphql through the ASGI app (``bench/asgi_client.py``); the response's body."""
    return response_body(await post_graphql(app, body, headers))


def build(variant: str) -> Any:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]
    # a budget no run exhausts (as bench/inprocess.py): a refused request would run nothing
    settings = Settings(
        env="production",
        database_url=f"sqlite:///{DB}",
        jwt_secret="x" * 64,
        rate_limit_points=10**9,
        response_cache=False,  # every request executes, and is traced
    )
    if variant == "off":
        return create_app(settings)
    from opentelemetry.sdk.trace import SpanProcessor

    from graph.observability.tracing import tracing_from_environment

    if variant == "noop":
        os.environ["OTEL_TRACES_SAMPLER"] = "always_off"  # read when the provider is made
    tracing = tracing_from_environment({}, processors=[SpanProcessor()])  # the base class drops every span
    os.environ.pop("OTEL_TRACES_SAMPLER", None)
    return create_app(settings, tracing=tracing)


BODY = orjson.dumps(load.build_body(OP, "ours", json.loads(Path(META).read_text())))


async def main() -> None:
    body = BODY
    apps = {variant: build(variant) for variant in VARIANTS}
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
            for _ in range(200):  # warm the caches
                await call(app, body, [])
        for _ in range(BATCHES):
            for variant, app in apps.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(BATCH):
                    await call(app, body, [])
                wall[variant].append((time.perf_counter() - started) / BATCH * 1e3)
                cpu[variant].append((time.process_time() - started_cpu) / BATCH * 1e3)
    for variant, app in apps.items():  # the answer, so a refusal cannot pass for a fast request
        print(variant, (await call(app, body, []))[:100])
    for variant in VARIANTS:
        print(
            f"{OP} {variant}: wall {statistics.median(wall[variant]):.3f} ms, "
            f"cpu {statistics.median(cpu[variant]):.3f} ms per request "
            f"(median of {BATCHES} batches of {BATCH})"
        )


asyncio.run(main())
