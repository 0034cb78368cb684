"""Tag article counts: ``tag.articles_count``, backfilled from ``article_tag``, and its index.

``tags`` and ``popularTags`` read the most used tags from the index on
``(articles_count DESC, name)`` instead of counting every ``article_tag`` row per request; the
writes keep the count in step (``db/models.py``, ``Tag``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ALTER TABLE ... ADD COLUMN on both engines (no table copy on SQLite: tag is referenced by article_tag)
    op.add_column("tag", sa.Column("articles_count", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE tag SET articles_count = (SELECT count(*) FROM article_tag WHERE article_tag.tag_id = tag.id)")
    op.create_index("ix_tag_articles_count", "tag", [sa.text("articles_count DESC"), "name"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tag_articles_count", table_name="tag")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: dropping the old tag table
    # would cascade to article_tag while foreign keys are enforced.
    op.drop_column("tag", "articles_count")
