"""``tag.articles_count`` and ``article.tag_names`` stay equal to a recount of ``article_tag`` through every write.

Articles are created, retagged and deleted through the real ``/graphql`` endpoint; after each
mutation every tag's stored count is compared with a recount of ``article_tag``, every article's
stored tag list with its ``article_tag`` rows in position order, and ``tags`` /
``popularTags`` with the ordering the recount gives (most used first, ties by name, unused tags
left out). ``popularTags`` reads the maintained count: its SQL never touches ``article_tag``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import sqlalchemy as sa

from db.models import article_table
from tests.conftest import GQL, User, Users, create_article, set_role, sql_of

UPDATE = (
    "mutation U($slug: String!, $input: UpdateArticleInput!) { updateArticle(slug: $slug, input: $input) { slug } }"
)
DELETE = "mutation D($slug: String!) { deleteArticle(slug: $slug) }"
TAGS = "query T($n: Int) { tags(first: $n) popularTags(first: $n) { name articlesCount } }"

RECOUNT = sa.text(
    "SELECT t.name, t.articles_count, (SELECT count(*) FROM article_tag at WHERE at.tag_id = t.id) AS recount "
    "FROM tag t ORDER BY t.name"
)

LINKS = sa.text(
    "SELECT at.article_id, t.name FROM article_tag at JOIN tag t ON t.id = at.tag_id "
    "ORDER BY at.article_id, at.position, t.name"
)


async def _stored_and_recounted(app: Any) -> list[tuple[str, int, int]]:
    async with app.state.conduit.db.engine.connect() as connection:
        return [(row.name, row.articles_count, row.recount) for row in await connection.execute(RECOUNT)]


async def _stored_and_linked_tag_lists(app: Any) -> list[tuple[int, list[str], list[str]]]:
    """Per article: its stored ``tag_names`` and its tag names from ``article_tag``, in position order."""
    async with app.state.conduit.db.engine.connect() as connection:
        stored = {row.id: row.tag_names for row in await connection.execute(sa.select(article_table))}
        linked: dict[int, list[str]] = {article_id: [] for article_id in stored}
        for row in await connection.execute(LINKS):
            linked[row.article_id].append(row.name)
    return [(article_id, stored[article_id], linked[article_id]) for article_id in sorted(stored)]


async def _check(app: Any, gql: GQL) -> dict[str, int]:
    """Every tag's count equals its recount, every article's tag list its links, and the lists follow
    the recount; returns the recount."""
    lists = await _stored_and_linked_tag_lists(app)
    assert [(article_id, stored) for article_id, stored, _ in lists] == [
        (article_id, linked) for article_id, _, linked in lists
    ]
    rows = await _stored_and_recounted(app)
    assert [(name, stored) for name, stored, _ in rows] == [(name, recount) for name, _, recount in rows]
    recount = {name: n for name, _, n in rows}
    expected = sorted(((name, n) for name, n in recount.items() if n > 0), key=lambda item: (-item[1], item[0]))
    for first in (100, 3):
        data = await gql.ok(TAGS, {"n": first})
        assert data["popularTags"] == [{"name": name, "articlesCount": n} for name, n in expected[:first]]
        assert data["tags"] == [name for name, _ in expected[:first]]
    return recount


async def test_counts_follow_creates_updates_and_deletes(app: Any, gql: GQL, alice: User, bob: User) -> None:
    one = await create_article(gql, alice, "One", tagList=["x", "y", "z"])
    two = await create_article(gql, alice, "Two", tagList=["y", "z"])
    three = await create_article(gql, bob, "Three", tagList=["z", "b"])
    await create_article(gql, bob, "Untagged")
    assert await _check(app, gql) == {"b": 1, "x": 1, "y": 2, "z": 3}

    # gains one tag, keeps one, loses one, and a brand-new tag appears
    await gql.ok(UPDATE, {"slug": two["slug"], "input": {"tagList": ["z", "x", "new"]}}, alice.token)
    assert await _check(app, gql) == {"b": 1, "new": 1, "x": 2, "y": 1, "z": 3}
    # the same tags in another order, with duplicates and blanks: no count moves
    await gql.ok(UPDATE, {"slug": two["slug"], "input": {"tagList": [" new ", "x", "z", "x", ""]}}, alice.token)
    assert await _check(app, gql) == {"b": 1, "new": 1, "x": 2, "y": 1, "z": 3}
    # no tagList: the tags stay
    await gql.ok(UPDATE, {"slug": one["slug"], "input": {"title": "One, retitled"}}, alice.token)
    one_slug = "one-retitled"
    assert await _check(app, gql) == {"b": 1, "new": 1, "x": 2, "y": 1, "z": 3}
    # every tag removed: "y" drops to 0 and leaves both lists, its row stays
    await gql.ok(UPDATE, {"slug": one_slug, "input": {"tagList": []}}, alice.token)
    assert await _check(app, gql) == {"b": 1, "new": 1, "x": 1, "y": 0, "z": 2}

    await gql.ok(DELETE, {"slug": three["slug"]}, bob.token)
    assert await _check(app, gql) == {"b": 0, "new": 1, "x": 1, "y": 0, "z": 1}
    # a moderator deletes someone else's article
    await set_role(app, "bob", "MODERATOR")
    await gql.ok(DELETE, {"slug": two["slug"]}, bob.token)
    assert await _check(app, gql) == {"b": 0, "new": 0, "x": 0, "y": 0, "z": 0}
    # a tag at 0 comes back
    await create_article(gql, bob, "Back", tagList=["y"])
    assert await _check(app, gql) == {"b": 0, "new": 0, "x": 0, "y": 1, "z": 0}


async def test_refused_writes_move_no_count(app: Any, gql: GQL, alice: User, bob: User) -> None:
    article = await create_article(gql, alice, "Mine", tagList=["kept"])
    refused = await gql(UPDATE, {"slug": article["slug"], "input": {"tagList": ["stolen"]}}, bob.token)
    assert refused.codes == ["FORBIDDEN"]
    refused = await gql(DELETE, {"slug": article["slug"]}, bob.token)
    assert refused.codes == ["FORBIDDEN"]
    refused = await gql(UPDATE, {"slug": article["slug"], "input": {"title": "", "tagList": ["other"]}}, alice.token)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert await _check(app, gql) == {"kept": 1}


async def test_counts_follow_a_random_run_of_writes(app: Any, gql: GQL, users: Users) -> None:
    rng = random.Random(11)  # noqa: S311 - a reproducible sequence of test writes
    authors = [await users.register(f"writer{i}") for i in range(3)]
    names = ["a", "b", "c", "d", "e", "f"]
    live: list[tuple[str, User]] = []
    for step in range(40):
        action = rng.choice(["create", "create", "retag", "delete"]) if live else "create"
        if action == "create":
            author = rng.choice(authors)
            tags = rng.sample(names, rng.randint(0, 4))
            article = await create_article(gql, author, f"Article {step}", tagList=tags)
            live.append((article["slug"], author))
        elif action == "retag":
            slug, author = rng.choice(live)
            tags = rng.sample(names, rng.randint(0, 4))
            await gql.ok(UPDATE, {"slug": slug, "input": {"tagList": tags}}, author.token)
        else:
            slug, author = live.pop(rng.randrange(len(live)))
            await gql.ok(DELETE, {"slug": slug}, author.token)
        await _check(app, gql)
    for slug, author in live:
        await gql.ok(DELETE, {"slug": slug}, author.token)
    assert set((await _check(app, gql)).values()) == {0}
    assert await gql.ok(TAGS, {"n": 100}) == {"tags": [], "popularTags": []}


async def test_popular_tags_read_the_count_not_article_tag(app: Any, gql: GQL, alice: User) -> None:
    for i in range(5):
        await create_article(gql, alice, f"Article {i}", tagList=[f"t{i % 3}", "common"])
    with sql_of(app) as statements:
        data = await gql.ok("{ tags(first: 2) popularTags(first: 2) { name articlesCount } }")
    assert data == {
        "tags": ["common", "t0"],
        "popularTags": [{"name": "common", "articlesCount": 5}, {"name": "t0", "articlesCount": 2}],
    }
    reads = [sql for sql in statements if "articles_count" in sql]
    assert reads, statements
    assert not [sql for sql in statements if "article_tag" in sql], statements


async def test_popular_tags_come_from_the_index_without_a_sort(app: Any, gql: GQL, alice: User) -> None:
    """The plan of the resolver's statement walks ``ix_tag_articles_count``: no sort, no article_tag."""
    for i in range(3):
        await create_article(gql, alice, f"Article {i}", tagList=[f"t{i}"])
    seen: list[tuple[str, Any]] = []
    engine = app.state.conduit.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "articles_count" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        await gql.ok("{ popularTags(first: 2) { name } }")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    [(statement, parameters)] = seen
    db = app.state.conduit.db
    async with db.engine.connect() as connection:
        if db.is_sqlite:
            plan = " | ".join(
                row[-1]
                for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(parameters))
            )
        else:
            # three rows: let the planner show the plan it uses at scale
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " | ".join(
                row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", tuple(parameters))
            )
        await connection.rollback()
    assert "ix_tag_articles_count" in plan, plan
    assert "article_tag" not in plan and "TEMP B-TREE" not in plan and "Sort" not in plan, plan


async def test_concurrent_writes_with_overlapping_tags_neither_fail_nor_drift(app: Any, gql: GQL, users: Users) -> None:
    """Writers that share tags, in every order, queue on the tag rows: no deadlock, no lost count."""
    rng = random.Random(5)  # noqa: S311 - reproducible tag orders
    writers = [await users.register(f"busy{i}") for i in range(4)]
    names = list("abcdefgh")
    create = "mutation($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"

    async def write(query: str, variables: dict[str, Any], writer: User) -> Any:
        response = await gql(query, variables, writer.token)
        assert not response.errors, response.errors
        return response.data

    for round_ in range(3):
        created = await asyncio.gather(
            *(
                write(
                    create,
                    {
                        "i": {
                            "title": f"R{round_} {i}",
                            "description": "d",
                            "body": "b",
                            "tagList": rng.sample(names, 5),
                        }
                    },
                    writers[i % 4],
                )
                for i in range(30)
            )
        )
        slugs = [(data["createArticle"]["slug"], writers[i % 4]) for i, data in enumerate(created)]
        await asyncio.gather(
            *(
                write(UPDATE, {"slug": slug, "input": {"tagList": rng.sample(names, 4)}}, writer)
                for slug, writer in slugs[:15]
            ),
            *(write(DELETE, {"slug": slug}, writer) for slug, writer in slugs[15:25]),
        )
    await _check(app, gql)
