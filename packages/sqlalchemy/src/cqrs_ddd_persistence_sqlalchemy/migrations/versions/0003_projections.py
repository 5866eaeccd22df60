"""Create the projection state and dead-letter tables.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cqrs_projections`` and ``cqrs_projection_dead_letters``."""
    op.create_table(
        "cqrs_projections",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_table(
        "cqrs_projection_dead_letters",
        sa.Column("projection", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("stream_id", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("error_class", sa.String(255), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop the projection tables."""
    op.drop_table("cqrs_projection_dead_letters")
    op.drop_table("cqrs_projections")
