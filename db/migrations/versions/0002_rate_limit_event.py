"""Rate-limit events: counted login failures, registrations and refreshes per bucket.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_event")),
    )
    op.create_index("ix_rate_limit_event_bucket", "rate_limit_event", ["bucket", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rate_limit_event_bucket", table_name="rate_limit_event")
    op.drop_table("rate_limit_event")
