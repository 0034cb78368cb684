"""Accounts: email verification, suspension, mailed single-use tokens and the mail outbox.

``user`` gains ``email_verified`` and the current suspension (``suspended_at``,
``suspended_until``, ``suspension_reason``, ``suspended_by_id``); ``account_token`` holds the
hashes of password-reset and verification tokens; ``mail_outbox`` the mails to send after
their transaction commits (``db/models.py``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ALTER TABLE ... ADD COLUMN on both engines: no table copy (user is referenced everywhere)
    op.add_column("user", sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("user", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("user", sa.Column("suspended_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("user", sa.Column("suspension_reason", sa.String(), nullable=True))
    op.add_column("user", sa.Column("suspended_by_id", sa.Integer(), nullable=True))
    op.create_table(
        "account_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_account_token_user_id_user", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_account_token"),
        sa.UniqueConstraint("token_hash", name="uq_account_token_token_hash"),
    )
    op.create_index("ix_account_token_user_id", "account_token", ["user_id", "purpose"], unique=False)
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("text_body", sa.String(), nullable=True),
        sa.Column("html_body", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_mail_outbox_user_id_user", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
    )
    op.create_index("ix_mail_outbox_next_attempt_at", "mail_outbox", ["sent_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_index("ix_account_token_user_id", table_name="account_token")
    op.drop_table("account_token")
    # ALTER TABLE ... DROP COLUMN, not a batch copy (see 0004)
    op.drop_column("user", "suspended_by_id")
    op.drop_column("user", "suspension_reason")
    op.drop_column("user", "suspended_until")
    op.drop_column("user", "suspended_at")
    op.drop_column("user", "email_verified")
