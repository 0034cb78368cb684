"""The Alembic migrations build the schema the models describe, on an empty database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from db.migrate import alembic_config, upgrade
from db.models import metadata


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    with sqlite3.connect(tmp_path / "m.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables <= {"alembic_version"}
    upgrade(url)


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrations_match_the_models(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    upgrade(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": False}), metadata)
    engine.dispose()
    # The FTS5 tables are created by raw SQL on purpose; everything else must match.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("article_fts"))]
    diff = [d for d in diff if not (d[0] == "add_index" and d[1].name == "uq_user_email_lower")]
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    import asyncio

    from db.engine import Database

    async def pragmas() -> tuple[str, int, int]:
        db = Database(f"sqlite:///{tmp_path / 'p.db'}")
        try:
            async with db.engine.connect() as connection:
                mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
                keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
                busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
                return mode, keys, busy
        finally:
            await db.dispose()

    assert asyncio.run(pragmas()) == ("wal", 1, 5000)


def _run_sql(database_url: str, *statements: str) -> list[Any]:
    """Run ``statements`` in one transaction; the rows of the last one (``[]`` if it returns none)."""
    import asyncio

    import sqlalchemy as sa

    from db.engine import Database

    async def run() -> list[Any]:
        db = Database(database_url)
        try:
            async with db.engine.begin() as connection:
                results = [await connection.execute(sa.text(statement)) for statement in statements]
                return list(results[-1]) if results[-1].returns_rows else []
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_tag_articles_count_is_backfilled_from_article_tag(database_url: str) -> None:
    """Migration 0004 on a database with tagged articles: each tag's count is its article_tag rows."""
    command.downgrade(alembic_config(database_url), "0003")

    _run_sql(
        database_url,
        'INSERT INTO "user" (id, username, email, password_hash, role, created_at, updated_at) '
        "VALUES (1, 'u', 'u@example.com', 'x', 'USER', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        "INSERT INTO tag (id, name) VALUES (1, 'three'), (2, 'one'), (3, 'none')",
        *(
            "INSERT INTO article (id, slug, title, description, body, author_id, favorites_count, created_at, "
            f"updated_at) VALUES ({i}, 's{i}', 't', 'd', 'b', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            for i in (1, 2, 3)
        ),
        "INSERT INTO article_tag (article_id, tag_id, position) VALUES (1, 1, 0), (2, 1, 0), (3, 1, 1), (3, 2, 0)",
    )
    upgrade(database_url)
    counts = _run_sql(database_url, "SELECT name, articles_count FROM tag ORDER BY id")
    assert [tuple(row) for row in counts] == [("three", 3), ("one", 1), ("none", 0)]
    command.downgrade(alembic_config(database_url), "0003")
    assert _run_sql(database_url, "SELECT count(*) FROM article_tag") == [(4,)]  # dropping the column kept the links
    upgrade(database_url)


def test_article_tag_names_are_backfilled_in_the_authors_order(database_url: str) -> None:
    """Migration 0006 on a database with tagged articles: each article's ``tag_names`` is its tags
    by position, then name (as they were read before), and ``[]`` for an untagged one."""
    command.downgrade(alembic_config(database_url), "0005")

    _run_sql(
        database_url,
        'INSERT INTO "user" (id, username, email, password_hash, role, created_at, updated_at) '
        "VALUES (1, 'u', 'u@example.com', 'x', 'USER', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        "INSERT INTO tag (id, name, articles_count) VALUES (1, 'zeta', 2), (2, 'alpha', 2), (3, 'mid', 1)",
        *(
            "INSERT INTO article (id, slug, title, description, body, author_id, favorites_count, created_at, "
            f"updated_at) VALUES ({i}, 's{i}', 't', 'd', 'b', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            for i in (1, 2, 3)
        ),
        # article 1 in its author's order; article 2's positions tie (rows from before positions): by name
        "INSERT INTO article_tag (article_id, tag_id, position) VALUES (1, 1, 0), (1, 3, 1), (1, 2, 2), "
        "(2, 1, 0), (2, 2, 0)",
    )
    upgrade(database_url)
    rows = _run_sql(database_url, "SELECT id, tag_names FROM article ORDER BY id")
    # text on SQLite, already decoded on PostgreSQL (SQLAlchemy's asyncpg json codec)
    assert [(article_id, names if isinstance(names, list) else json.loads(names)) for article_id, names in rows] == [
        (1, ["zeta", "mid", "alpha"]),
        (2, ["alpha", "zeta"]),
        (3, []),
    ]
    command.downgrade(alembic_config(database_url), "0005")
    assert _run_sql(database_url, "SELECT count(*) FROM article_tag") == [(5,)]  # dropping the column kept the links
    upgrade(database_url)
