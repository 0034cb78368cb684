"""Q1 on PostgreSQL: rows + Python shaping (planned SQL, as served) against the response JSON built by the database.

    bench/json_in_db.py URL [N] [--no-count]

URL: a PostgreSQL database seeded as bench/run_pg.sh seeds it (e.g. ``KEEP_PG=1 bench/run_pg.sh``,
then postgresql://postgres@127.0.0.1:PORT/conduit). Times both in process, median of 5 rounds of
N (default 300), with Q1's ``totalCount`` or (``--no-count``) without it. Issue 11 asked to
measure both before choosing per engine; the numbers are in bench/results/planned-2026-12-06.md.
"""

import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import load
from graphql import parse
from graphql.execution.values import get_variable_values

from graph.app import create_app
from graph.execution.planned import plan_operation
from graph.schema import create_schema
from graph.settings import Settings

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
URL = ARGS[0]
N = int(ARGS[1]) if len(ARGS) > 1 else 300
COUNT = "--no-count" not in sys.argv

TIME = "to_char({}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
CURSOR = (
    "translate(encode(convert_to('cd|' || " + TIME.format("p.created_at") + " || '|' || p.id, 'UTF8'), 'base64'),"
    " '+/', '-_')"
)
TAGS = (
    "coalesce((SELECT json_agg(t.name ORDER BY at.position, t.name) FROM article_tag at"
    " JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id), '[]'::json)"
)
PAGE = "SELECT id, created_at FROM article ORDER BY created_at DESC, id DESC LIMIT $1"
JSON_SQL = f"""
SELECT json_build_object('articles', json_build_object(
  'edges', coalesce((SELECT json_agg(e ORDER BY k DESC, pk DESC) FROM (
     SELECT p.created_at AS k, p.id AS pk, json_build_object(
       'cursor', {CURSOR},
       'node', json_build_object(
         'slug', a.slug, 'title', a.title, 'description', a.description,
         'createdAt', {TIME.format("a.created_at")} || '+00:00',
         'tagList', {TAGS},
         'favoritesCount', a.favorites_count, 'favorited', false,
         'author', json_build_object('username', u.username, 'bio', u.bio, 'image', u.image, 'following', false))) AS e
     FROM ({PAGE}) p
     JOIN article a ON a.id = p.id JOIN "user" u ON u.id = a.author_id
     ORDER BY p.created_at DESC, p.id DESC LIMIT $2) page), '[]'::json),
  'pageInfo', json_build_object('hasNextPage', (SELECT count(*) FROM ({PAGE}) x) > $2, 'endCursor', NULL),
  'totalCount', {{count}}))::text
"""  # noqa: S608 - constant fragments of this script only


class _Context:
    """What planned SQL reads of a request's context: an anonymous viewer."""

    viewer = None
    request_id = "json-in-db"
    rate_limit = None

    def __init__(self, app: object) -> None:
        self.app = app


async def main() -> None:
    schema = create_schema(Settings(env="test", jwt_secret="x" * 64))._schema
    query = load.OURS["Q1"] if COUNT else load.OURS["Q1"].replace(" totalCount", "")
    operation = parse(query).definitions[0]
    plan = plan_operation(schema, operation, {}, False)
    variables = get_variable_values(schema, operation.variable_definitions, {"first": 20})
    app = create_app(Settings(env="test", database_url=URL, jwt_secret="x" * 64))
    async with app.router.lifespan_context(app):
        context = _Context(app.state.conduit)
        connection = await asyncpg.connect(URL)
        json_sql = JSON_SQL.replace("{count}", "(SELECT count(*) FROM article)" if COUNT else "NULL")

        async def rows_and_python() -> bytes:
            data, _errors = await plan.execute(context, variables)
            return orjson.dumps({"data": data})

        async def json_in_db() -> bytes:
            text = await connection.fetchval(json_sql, 21, 20)
            return b'{"data":' + text.encode() + b"}"

        for name, run in (
            ("rows + Python shaping (planned SQL, pooled connection)", rows_and_python),
            ("JSON built by PostgreSQL (one connection)", json_in_db),
        ):
            await run()
            rounds = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(N):
                    await run()
                rounds.append((time.perf_counter() - started) / N * 1e3)
            print(f"{name}: {statistics.median(rounds):.3f} ms per Q1 (median of 5 x {N})")
        await connection.close()


asyncio.run(main())
