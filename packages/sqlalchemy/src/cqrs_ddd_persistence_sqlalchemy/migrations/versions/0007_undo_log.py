"""Create the undo log.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``cqrs_undo_log`` and ``cqrs_undo_aggregates``."""
    op.create_table(
        "cqrs_undo_log",
        sa.Column("seq", Position, primary_key=True, autoincrement=True),
        sa.Column("token", sa.Uuid(), nullable=False, unique=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entry", JSONDocument, nullable=False),
    )
    op.create_index("ix_cqrs_undo_log_user", "cqrs_undo_log", ["user_id", "seq"])
    op.create_table(
        "cqrs_undo_aggregates",
        sa.Column("token", sa.Uuid(), primary_key=True),
        sa.Column("aggregate_id", sa.String(255), primary_key=True),
    )
    op.create_index(
        "ix_cqrs_undo_aggregates_aggregate", "cqrs_undo_aggregates", ["aggregate_id", "token"]
    )


def downgrade() -> None:
    """Drop the undo log."""
    op.drop_index("ix_cqrs_undo_aggregates_aggregate", "cqrs_undo_aggregates")
    op.drop_table("cqrs_undo_aggregates")
    op.drop_index("ix_cqrs_undo_log_user", "cqrs_undo_log")
    op.drop_table("cqrs_undo_log")
