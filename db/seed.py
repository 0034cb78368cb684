"""Deterministic demo data: users, follows, articles with tags, favorites and comments.

Rows are generated from ``random.Random(seed)`` and inserted in large batches, so the
benchmark's scale (5,000 users, 50,000 articles, 200,000 comments, 250,000 favorites, 20,000
follows) takes well under a minute. Every demo user's password is ``DEMO_PASSWORD`` (one hash,
computed once: hashing 5,000 argon2id passwords would take minutes).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Database
from db.models import (
    Role,
    article_table,
    article_tag_table,
    comment_table,
    favorite_table,
    follow_table,
    tag_table,
    user_table,
)

DEMO_PASSWORD = "conduit-demo"  # noqa: S105 - the documented demo login, printed by `conduit db seed`
DEMO_USERNAME = "demo"
DEMO_EMAIL = "demo@conduit.example"
BATCH = 5_000

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
]
TAGS = [
    "programming",
    "javascript",
    "python",
    "react",
    "graphql",
    "databases",
    "sqlite",
    "postgres",
    "devops",
    "testing",
    "design",
    "career",
    "webdev",
    "css",
    "rust",
    "go",
    "security",
    "performance",
    "cloud",
    "linux",
    "opensource",
    "tutorial",
    "beginners",
    "productivity",
    "architecture",
    "api",
    "typescript",
    "node",
    "docker",
    "kubernetes",
    "machinelearning",
    "data",
    "ai",
    "frontend",
    "backend",
    "mobile",
    "android",
    "ios",
    "startup",
    "writing",
    "books",
    "music",
    "travel",
    "food",
    "health",
    "science",
    "history",
    "math",
    "physics",
    "gaming",
    "photography",
][:50]
FIRST_NAMES = [
    "ada",
    "alan",
    "grace",
    "linus",
    "guido",
    "barbara",
    "ken",
    "dennis",
    "margaret",
    "tim",
    "bjarne",
    "anders",
    "yukihiro",
    "rich",
    "larry",
]


@dataclass
class SeedPlan:
    """How much to create; ``seed`` makes the data reproducible."""

    users: int = 50
    articles: int = 250
    comments: int = 1_000
    favorites: int = 1_000
    follows: int = 200
    seed: int = 42
    counts: dict[str, int] = field(default_factory=dict)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _body(rng: random.Random) -> str:
    target = rng.randint(1_000, 3_000)
    paragraphs: list[str] = []
    size = 0
    while size < target:
        paragraph = _sentence(rng, 30, 80).capitalize() + "."
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:target]


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


async def _insert(connection: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    for batch in _batches(rows):
        await connection.execute(sa.insert(table), list(batch))


async def is_empty(db: Database) -> bool:
    """Whether the database has no users yet."""
    async with db.engine.connect() as connection:
        return (await connection.execute(sa.select(sa.func.count()).select_from(user_table))).scalar_one() == 0


async def seed(db: Database, plan: SeedPlan, password_hash: str) -> dict[str, int]:
    """Insert the demo data of ``plan`` into an empty, migrated database; returns row counts.

    The first user is ``demo`` (``DEMO_EMAIL``, role ``ADMIN``). Raises ``ValueError`` if the
    database already has users.
    """
    if not await is_empty(db):
        raise ValueError("the database already has users; seed only an empty database")
    rng = random.Random(plan.seed)  # noqa: S311 - reproducible demo data from a seed, not secrets
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    epoch = now - dt.timedelta(days=730)
    span = (now - epoch).total_seconds()

    def moment_after(start: dt.datetime) -> dt.datetime:
        room = max((now - start).total_seconds(), 1.0)
        return start + dt.timedelta(seconds=rng.random() * room, microseconds=rng.randrange(1_000_000))

    users: list[dict[str, Any]] = []
    for i in range(1, plan.users + 1):
        username = DEMO_USERNAME if i == 1 else f"{rng.choice(FIRST_NAMES)}_{i}"
        created = epoch + dt.timedelta(seconds=rng.random() * span * 0.5)
        users.append(
            {
                "id": i,
                "username": username,
                "email": DEMO_EMAIL if i == 1 else f"{username}@example.com",
                "password_hash": password_hash,
                "bio": _sentence(rng, 5, 20).capitalize() + ".",
                "image": f"https://i.pravatar.cc/150?u={username}",
                "role": (Role.ADMIN if i == 1 else Role.USER).value,
                "created_at": created,
                "updated_at": created,
            }
        )
    follows: set[tuple[int, int]] = set()
    while len(follows) < min(plan.follows, plan.users * (plan.users - 1)):
        a, b = rng.randint(1, plan.users), rng.randint(1, plan.users)
        if a != b:
            follows.add((a, b))
    tags: list[dict[str, Any]] = [{"id": i + 1, "name": name, "articles_count": 0} for i, name in enumerate(TAGS)]
    tag_weights = [1 / (rank + 1) for rank in range(len(tags))]  # Zipf-like popularity
    articles: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for i in range(1, plan.articles + 1):
        author = users[rng.randrange(plan.users)]
        created = moment_after(author["created_at"])
        title = _sentence(rng, 3, 8).capitalize()
        slug = "-".join(title.lower().split()) + f"-{i}"
        articles.append(
            {
                "id": i,
                "slug": slug,
                "title": title,
                "description": _sentence(rng, 8, 20).capitalize() + ".",
                "body": _body(rng),
                "author_id": author["id"],
                "favorites_count": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
        chosen: list[int] = []
        for _ in range(rng.randint(1, 4)):
            tag_id = rng.choices(range(1, len(tags) + 1), weights=tag_weights)[0]
            if tag_id not in chosen:
                chosen.append(tag_id)
        links.extend({"article_id": i, "tag_id": t, "position": p} for p, t in enumerate(chosen))
        articles[-1]["tag_names"] = [tags[t - 1]["name"] for t in chosen]  # as set_tags writes it
    for link in links:  # tag.articles_count is kept in step with article_tag (db/models.py, Tag)
        tags[link["tag_id"] - 1]["articles_count"] += 1
    favorites: dict[tuple[int, int], dt.datetime] = {}
    target = min(plan.favorites, plan.users * plan.articles)
    while len(favorites) < target:
        user_id, article_id = rng.randint(1, plan.users), rng.randint(1, plan.articles)
        if (user_id, article_id) not in favorites:
            favorites[(user_id, article_id)] = moment_after(articles[article_id - 1]["created_at"])
    for _, article_id in favorites:
        articles[article_id - 1]["favorites_count"] += 1
    comments: list[dict[str, Any]] = []
    if plan.articles:
        stamps = []
        for _ in range(plan.comments):
            article_id = rng.randint(1, plan.articles)
            stamps.append((moment_after(articles[article_id - 1]["created_at"]), article_id))
        stamps.sort()  # comment ids grow with time, as they do in a live database
        for i, (created, article_id) in enumerate(stamps, start=1):
            comments.append(
                {
                    "id": i,
                    "body": _sentence(rng, 5, 40).capitalize() + ".",
                    "article_id": article_id,
                    "author_id": rng.randint(1, plan.users),
                    "created_at": created,
                    "updated_at": created,
                }
            )
    async with db.engine.connect() as connection:
        if db.is_sqlite:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await connection.begin()
        await _insert(connection, user_table, users)
        await _insert(
            connection,
            follow_table,
            [{"follower_id": a, "followee_id": b, "created_at": now} for a, b in sorted(follows)],
        )
        await _insert(connection, tag_table, tags)
        await _insert(connection, article_table, articles)
        await _insert(connection, article_tag_table, links)
        await _insert(
            connection,
            favorite_table,
            [{"user_id": u, "article_id": a, "created_at": at} for (u, a), at in sorted(favorites.items())],
        )
        await _insert(connection, comment_table, comments)
        if not db.is_sqlite:
            # explicit ids were inserted; move each sequence past them
            for table in (user_table, article_table, tag_table, comment_table):
                sequence = sa.func.pg_get_serial_sequence(f'"{table.name}"', "id")
                next_id = sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0) + 1).scalar_subquery()
                await connection.execute(sa.select(sa.func.setval(sequence, next_id, False)))
        await connection.commit()
    return {
        "users": len(users),
        "follows": len(follows),
        "tags": len(tags),
        "articles": len(articles),
        "article_tags": len(links),
        "favorites": len(favorites),
        "comments": len(comments),
    }


def timed_seed_message(counts: dict[str, int], seconds: float) -> str:
    """A one-line summary of what ``seed`` created."""
    parts = ", ".join(f"{n:,} {name}" for name, n in counts.items())
    return f"seeded {parts} in {seconds:.1f} s"
