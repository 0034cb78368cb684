"""How many article pages the response cache still answers while comments are being written.

    PYTHONPATH=. .venv/bin/python bench/purges.py DB META [READS] [PAGES] [EVERY]

DB: a SQLite file of the benchmark's data upgraded with ``conduit db upgrade`` (as for
``bench/inprocess.py``; it is copied first, the comments go to the copy); META: the meta JSON
``bench/run.sh`` wrote. In process, anonymous readers open the pages of PAGES articles (default
100) in turn, the benchmark's Q2 shape, READS times (default 5,000), and a signed-in user adds a
comment to one of those articles, picked at random with a fixed seed, after every EVERY reads
(default 10). Prints the share of reads the cache answered and its purges. Run it at two
commits to compare how they tag entries: with tags per kind of entity, every comment purges
every article page.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from asgi_client import post_graphql as call  # bench/ is the script's own directory
from asgi_client import response_body

from graph.app import create_app
from graph.settings import Settings

ARGS = sys.argv[1:]
DB, META = ARGS[0], ARGS[1]
READS = int(ARGS[2]) if len(ARGS) > 2 else 5000
PAGES = int(ARGS[3]) if len(ARGS) > 3 else 100
EVERY = int(ARGS[4]) if len(ARGS) > 4 else 10
ADD = "mutation M($slug: String!, $body: String!) { addComment(slug: $slug, body: $body) { id } }"


async def main(path: str, meta: dict[str, Any]) -> None:
    settings = Settings(
        env="production", database_url=f"sqlite:///{path}", jwt_secret="x" * 64, rate_limit_points=10**9
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        login = f'mutation {{ login(input: {{email: "{meta["m1_email"]}", password: "conduit-demo"}}) {{ token }} }}'
        token = orjson.loads(response_body(await call(app, orjson.dumps({"query": login}))))
        auth = [(b"authorization", f"Bearer {token['data']['login']['token']}".encode())]
        listed = orjson.loads(
            response_body(
                await call(app, orjson.dumps({"query": f"{{ articles(first: {PAGES}) {{ nodes {{ slug }} }} }}"}))
            )
        )
        slugs = [node["slug"] for node in listed["data"]["articles"]["nodes"]]
        page = load.build_body("Q2", "ours", meta)
        chosen = random.Random(1)  # noqa: S311 - a reproducible choice, not a secret
        hits = 0
        for n in range(READS):
            body = orjson.dumps({**page, "variables": {"slug": slugs[n % len(slugs)]}})
            messages = await call(app, body)
            start = next(m for m in messages if m["type"] == "http.response.start")
            hits += (b"x-cache", b"HIT") in start["headers"]
            if n % EVERY == EVERY - 1:
                comment = {"slug": chosen.choice(slugs), "body": "A comment while others read."}
                await call(app, orjson.dumps({"query": ADD, "variables": comment}), auth)
        purges = READS // EVERY
        print(f"{READS} reads of {len(slugs)} article pages, a comment after every {EVERY} ({purges} purges)")
        print(f"answered from the cache: {hits} ({hits / READS:.1%})")


with tempfile.TemporaryDirectory() as folder:
    copy = str(Path(folder) / "purges.db")
    shutil.copy(DB, copy)
    asyncio.run(main(copy, json.loads(Path(META).read_text())))
