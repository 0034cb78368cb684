"""Shapes the benchmark does not name, planned SQL against graphql-core, in process.

    PYTHONPATH=. .venv/bin/python bench/shapes.py DB META [--auth]

DB and META as for bench/inprocess.py (DB: a SQLite file or a database URL, e.g. the cluster
of bench/run_pg.sh). Prints a table row per shape: ms per request with planned SQL, with
graphql-core (CONDUIT_PLANNED_EXECUTION=false), the speed-up, and whether the two answers are
the same bytes. ``--auth``: every request signed in (a token from ``login`` as META's demo
user, ``m1_email``), with the shapes that need a viewer added.
"""

import asyncio
import json
import sys
import time

import orjson
from asgi_client import post_graphql as call  # bench/ is the script's own directory

from graph.app import create_app
from graph.settings import Settings

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
AUTH = "--auth" in sys.argv
DB = ARGS[0]
with open(ARGS[1]) as meta_file:
    meta = json.load(meta_file)
SHAPES = {
    "nodes(3 types)": (
        '{ nodes(ids: ["QXJ0aWNsZTox", "VXNlcjox", "Q29tbWVudDox", "QXJ0aWNsZToy"]) { id '
        "... on Article { title author { username } } ... on User { username followersCount } "
        "... on Comment { body article { slug } } } }"
    ),
    "user+favorites+comments": (
        f'{{ user(username: "{meta["p1_username"]}") {{ username favorites(first: 10) {{ totalCount '
        "edges { cursor node { slug tagList comments(first: 3) { nodes { body author { username } } } } } } } }"
    ),
    "two aliased lists": (
        f'{{ a: articles(first: 10, tag: "{meta["q3_tag"]}") {{ edges {{ node {{ slug }} }} }} '
        "b: articles(first: 10, orderBy: {field: CREATED_AT, direction: ASC}) "
        "{ edges { node { slug author { username } } } } }"
    ),
    "article+comments+author articles": (
        f'{{ article(slug: "{meta["q2_slug"]}") {{ title comments(first: 20) {{ edges {{ node {{ body '
        "author { username articles(first: 3) { nodes { slug } } } } } } } }"
    ),
    "search page": '{ articles(search: "lorem", first: 20) { totalCount edges { node { slug } } } }',
    "popularTags+tags": "{ popularTags(first: 10) { name articlesCount } tags(first: 10) }",
}
SIGNED_IN_SHAPES = {
    "viewer+feed": (
        "{ viewer { username articles(first: 5) { totalCount } } "
        "feed(first: 10) { edges { node { slug favorited author { username following } } } } }"
    ),
    "favorited page": (
        "{ articles(first: 10, orderBy: {field: FAVORITES_COUNT, direction: DESC}) "
        "{ edges { node { slug favorited favoritesCount author { following } } } } }"
    ),
}
if AUTH:
    SHAPES.update(SIGNED_IN_SHAPES)


async def timed(app, body, headers, n=300):
    for _ in range(20):
        await call(app, body, headers)
    t = time.perf_counter()
    for _ in range(n):
        await call(app, body, headers)
    return (time.perf_counter() - t) / n * 1e3


async def signed_in(app):
    """The Authorization header of META's demo user on ``app`` (none without ``--auth``)."""
    if not AUTH:
        return []
    login = f'mutation {{ login(input: {{email: "{meta["m1_email"]}", password: "conduit-demo"}}) {{ token }} }}'
    token = orjson.loads((await call(app, orjson.dumps({"query": login}), []))[1]["body"])["data"]["login"]["token"]
    return [(b"authorization", f"Bearer {token}".encode())]


async def main():
    apps = [
        create_app(
            Settings(
                env="production",
                database_url=DB if "://" in DB else f"sqlite:///{DB}",
                jwt_secret="x" * 64,
                rate_limit_points=10**9,
                planned_execution=p,
                response_cache=False,  # every request executes: what is compared
            )
        )
        for p in (True, False)
    ]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        headers = [await signed_in(app) for app in apps]
        for name, q in SHAPES.items():
            body = orjson.dumps({"query": q})
            a = (await call(apps[0], body, headers[0]))[1]["body"]
            b = (await call(apps[1], body, headers[1]))[1]["body"]
            p, o = await timed(apps[0], body, headers[0]), await timed(apps[1], body, headers[1])
            print(f"| {name} | {p:.2f} | {o:.2f} | {o / p:.1f}x | {'same' if a == b else 'DIFFERENT'} |")
        print(apps[0].state.conduit.execution.answered)


asyncio.run(main())
