"""An embedded connection's rows on PostgreSQL: ``array_agg(row(...))`` records against ``json_agg`` + orjson.

    PYTHONPATH=. .venv/bin/python bench/records_vs_json.py URL [N]

URL: a PostgreSQL database seeded as bench/run_pg.sh seeds it. Reads the comments (up to 50) of
the article with the most comments inside the article's statement, as planned SQL embeds a
connection (``graph/execution/planned/runs.py``, ``embedded``), once as an array of records
asyncpg decodes with each column's codec (what is served: timestamps arrive as datetimes), once
as JSON text decoded by orjson (timestamps would arrive as PostgreSQL's text and need parsing).
Prints the median of 5 rounds of N (default 1000) statements: wall and this process's CPU.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

URL = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
PAGE = """FROM (SELECT c.id, c.body, c.created_at, u.username, u.image FROM comment c
  JOIN "user" u ON u.id = c.author_id WHERE c.article_id = a.id ORDER BY c.id LIMIT $2) x"""
# constant fragments of this script only (S608)
RECORDS = (
    "SELECT a.id, a.title, (SELECT array_agg(row(x.id, x.body, x.created_at, x.username, x.image) "  # noqa: S608
    f"ORDER BY x.id) {PAGE}) FROM article a WHERE a.id = $1"
)
JSON = (
    "SELECT a.id, a.title, (SELECT json_agg(json_build_array(x.id, x.body, x.created_at, x.username, x.image) "  # noqa: S608
    f"ORDER BY x.id) {PAGE}) FROM article a WHERE a.id = $1"
)


async def main() -> None:
    connection = await asyncpg.connect(URL)
    article = await connection.fetchval(
        "SELECT article_id FROM comment GROUP BY article_id ORDER BY count(*) DESC LIMIT 1"
    )
    ways: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("records", RECORDS, lambda row: row[2]),
        ("json", JSON, lambda row: orjson.loads(row[2])),
    ]
    for name, sql, decode in ways:
        for _ in range(200):
            decode((await connection.fetch(sql, article, 51))[0])
        walls, cpus = [], []
        for _ in range(5):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(N):
                decode((await connection.fetch(sql, article, 51))[0])
            walls.append((time.perf_counter() - wall) / N * 1e3)
            cpus.append((time.process_time() - cpu) / N * 1e3)
        print(f"{name}: {statistics.median(walls):.3f} ms wall, {statistics.median(cpus):.3f} ms CPU per statement")
    await connection.close()


asyncio.run(main())
