"""Demo data: deterministic, consistent counters, searchable, and usable through the API."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from auth.passwords import hash_password
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, seed
from tests.conftest import GQL, Users, create_article

PLAN = SeedPlan(users=30, articles=120, comments=300, favorites=400, follows=60, seed=7)


async def _dump(app: Any) -> list[Any]:
    async with app.state.conduit.db.engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT slug, title, favorites_count, author_id FROM article ORDER BY id")
        )
        return list(rows)


async def test_seed_is_deterministic_and_consistent(app: Any, gql: GQL) -> None:
    counts = await seed(app.state.conduit.db, PLAN, hash_password(DEMO_PASSWORD))
    assert counts["users"] == 30 and counts["articles"] == 120 and counts["comments"] == 300
    assert counts["favorites"] == 400
    first = await _dump(app)
    async with app.state.conduit.db.engine.connect() as connection:
        mismatched = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) FROM article a WHERE a.favorites_count != "
                    "(SELECT count(*) FROM favorite f WHERE f.article_id = a.id)"
                )
            )
        ).scalar_one()
        assert mismatched == 0
        mismatched = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) FROM tag t WHERE t.articles_count != "
                    "(SELECT count(*) FROM article_tag at WHERE at.tag_id = t.id)"
                )
            )
        ).scalar_one()
        assert mismatched == 0

    login = await gql.ok(
        "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { user { username role } } }",
        {"e": DEMO_EMAIL, "p": DEMO_PASSWORD},
    )
    assert login["login"]["user"] == {"username": "demo", "role": "ADMIN"}
    listed = await gql.ok("{ articles(first: 100) { totalCount } popularTags(first: 3) { name articlesCount } }")
    assert listed["articles"]["totalCount"] == 120
    word = first[0].title.split()[0].lower()
    found = await gql.ok("query($w: String!) { articles(search: $w, first: 100) { nodes { title } } }", {"w": word})
    assert any(word in node["title"].lower() for node in found["articles"]["nodes"])

    async with app.state.conduit.db.engine.begin() as connection:
        for table in ("comment", "favorite", "article_tag", "article", "tag", "follow", "user"):
            await connection.execute(sa.text(f'DELETE FROM "{table}"'))
    await seed(app.state.conduit.db, PLAN, hash_password(DEMO_PASSWORD))
    assert await _dump(app) == first


async def test_rows_added_after_a_seed_get_fresh_ids(app: Any, gql: GQL, users: Users) -> None:
    """The seed inserts explicit ids; on PostgreSQL it must move each sequence past them."""
    await seed(app.state.conduit.db, SeedPlan(users=3, articles=4, comments=5, favorites=2, follows=1), "x")
    author = await users.register("after_seed")
    article = await create_article(gql, author, tagList=["fresh-tag"])
    await gql.ok(
        'mutation($s: String!) { addComment(slug: $s, body: "new") { id } }', {"s": article["slug"]}, author.token
    )
