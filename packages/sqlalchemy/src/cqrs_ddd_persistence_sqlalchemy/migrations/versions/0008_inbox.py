"""Create the inbox.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cqrs_inbox``."""
    op.create_table(
        "cqrs_inbox",
        sa.Column("consumer", sa.String(255), primary_key=True),
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("received_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_cqrs_inbox_received", "cqrs_inbox", ["received_at"])


def downgrade() -> None:
    """Drop the inbox."""
    op.drop_index("ix_cqrs_inbox_received", "cqrs_inbox")
    op.drop_table("cqrs_inbox")
