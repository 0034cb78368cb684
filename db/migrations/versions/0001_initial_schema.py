"""Initial schema: the Conduit tables, their indexes, and full-text search over articles.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
        sa.UniqueConstraint("name", name=op.f("uq_tag_name")),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("bio", sa.String(), nullable=True),
        sa.Column("image", sa.String(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("username", name=op.f("uq_user_username")),
    )
    # Emails are unique case-insensitively (contract README, Authentication).
    op.create_index("uq_user_email_lower", "user", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "article",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("favorites_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], name=op.f("fk_article_author_id_user"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article")),
        sa.UniqueConstraint("slug", name=op.f("uq_article_slug")),
    )
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.create_index("ix_article_author_id", ["author_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_article_created_at", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_article_favorites_count", ["favorites_count", "id"], unique=False)

    op.create_table(
        "follow",
        sa.Column("follower_id", sa.Integer(), nullable=False),
        sa.Column("followee_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["followee_id"], ["user.id"], name=op.f("fk_follow_followee_id_user"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["follower_id"], ["user.id"], name=op.f("fk_follow_follower_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_follow")),
    )
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.create_index("ix_follow_followee_id", ["followee_id"], unique=False)

    op.create_table(
        "refresh_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_refresh_token_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_token_token_hash")),
    )
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.create_index("ix_refresh_token_family_id", ["family_id"], unique=False)
        batch_op.create_index("ix_refresh_token_user_id", ["user_id"], unique=False)

    op.create_table(
        "article_tag",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["article.id"], name=op.f("fk_article_tag_article_id_article"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], name=op.f("fk_article_tag_tag_id_tag"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("article_id", "tag_id", name=op.f("pk_article_tag")),
    )
    with op.batch_alter_table("article_tag", schema=None) as batch_op:
        batch_op.create_index("ix_article_tag_tag_id", ["tag_id", "article_id"], unique=False)

    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["article.id"], name=op.f("fk_comment_article_id_article"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], name=op.f("fk_comment_author_id_user"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment")),
    )
    with op.batch_alter_table("comment", schema=None) as batch_op:
        batch_op.create_index("ix_comment_article_id", ["article_id", "id"], unique=False)

    op.create_table(
        "favorite",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["article.id"], name=op.f("fk_favorite_article_id_article"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_favorite_user_id_user"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "article_id", name=op.f("pk_favorite")),
    )
    with op.batch_alter_table("favorite", schema=None) as batch_op:
        batch_op.create_index("ix_favorite_article_id", ["article_id"], unique=False)
        batch_op.create_index("ix_favorite_user_id", ["user_id", "created_at", "article_id"], unique=False)
    _create_search()


def _create_search() -> None:
    """Full-text search over title, description and body: FTS5 on SQLite, tsvector on PostgreSQL.

    Both tokenize on Unicode word boundaries, fold case and do no stemming, so a search word
    matches the same whole words on either engine.
    """
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE article_fts USING fts5(title, description, body, "
            "content='article', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER article_fts_insert AFTER INSERT ON article BEGIN "
            "INSERT INTO article_fts(rowid, title, description, body) "
            "VALUES (new.id, new.title, new.description, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER article_fts_delete AFTER DELETE ON article BEGIN "
            "INSERT INTO article_fts(article_fts, rowid, title, description, body) "
            "VALUES ('delete', old.id, old.title, old.description, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER article_fts_update AFTER UPDATE OF title, description, body ON article BEGIN "
            "INSERT INTO article_fts(article_fts, rowid, title, description, body) "
            "VALUES ('delete', old.id, old.title, old.description, old.body); "
            "INSERT INTO article_fts(rowid, title, description, body) "
            "VALUES (new.id, new.title, new.description, new.body); END"
        )
    else:
        op.execute(
            "ALTER TABLE article ADD COLUMN search tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple', title || ' ' || description || ' ' || body)) STORED"
        )
        op.execute("CREATE INDEX ix_article_search ON article USING gin (search)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("article_fts_insert", "article_fts_delete", "article_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS article_fts")
    with op.batch_alter_table("favorite", schema=None) as batch_op:
        batch_op.drop_index("ix_favorite_user_id")
        batch_op.drop_index("ix_favorite_article_id")

    op.drop_table("favorite")
    with op.batch_alter_table("comment", schema=None) as batch_op:
        batch_op.drop_index("ix_comment_article_id")

    op.drop_table("comment")
    with op.batch_alter_table("article_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_article_tag_tag_id")

    op.drop_table("article_tag")
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_token_user_id")
        batch_op.drop_index("ix_refresh_token_family_id")

    op.drop_table("refresh_token")
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_followee_id")

    op.drop_table("follow")
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.drop_index("ix_article_favorites_count")
        batch_op.drop_index("ix_article_created_at")
        batch_op.drop_index("ix_article_author_id")

    op.drop_table("article")
    op.drop_index("uq_user_email_lower", table_name="user")
    op.drop_table("user")
    op.drop_table("tag")
