"""Article tag names: ``article.tag_names``, in the author's order, backfilled from ``article_tag``.

Every page of articles shows each one's ``tagList``. Read from ``article_tag`` it cost a
correlated subquery and a sort per article (about 45 µs of SQLite's time for a page of 20, as
much as the rest of the page's statement); the writes keep this copy in step instead
(``db/models.py``, ``Article``). ``article_tag`` stays the source for filtering by tag.

On PostgreSQL the backfill writes a new version of every article row: until autovacuum (or
``VACUUM ANALYZE article``) has been through, the old ones slow down scans of the table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the order the tag list was read in before (graph/loaders, tag_names): position, then name
SQLITE_BACKFILL = (
    "UPDATE article SET tag_names = (SELECT json_group_array(name) FROM (SELECT t.name AS name "
    "FROM article_tag at JOIN tag t ON t.id = at.tag_id WHERE at.article_id = article.id "
    "ORDER BY at.position, t.name)) "
    "WHERE EXISTS (SELECT 1 FROM article_tag WHERE article_tag.article_id = article.id)"
)
POSTGRES_BACKFILL = (
    "UPDATE article SET tag_names = (SELECT json_agg(t.name ORDER BY at.position, t.name) "
    "FROM article_tag at JOIN tag t ON t.id = at.tag_id WHERE at.article_id = article.id) "
    "WHERE EXISTS (SELECT 1 FROM article_tag WHERE article_tag.article_id = article.id)"
)


def upgrade() -> None:
    # ALTER TABLE ... ADD COLUMN on both engines (no table copy on SQLite: article is referenced)
    op.add_column("article", sa.Column("tag_names", sa.JSON(), server_default="[]", nullable=False))
    op.execute(SQLITE_BACKFILL if op.get_context().dialect.name == "sqlite" else POSTGRES_BACKFILL)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: dropping the old article
    # table would cascade to its comments, favorites and tags while foreign keys are enforced.
    op.drop_column("article", "tag_names")
