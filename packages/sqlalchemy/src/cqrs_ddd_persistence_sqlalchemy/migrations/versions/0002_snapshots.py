"""Create the snapshot table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cqrs_snapshots``."""
    op.create_table(
        "cqrs_snapshots",
        sa.Column("stream_id", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("aggregate_type", sa.String(255), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("state", JSONDocument, nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop ``cqrs_snapshots``."""
    op.drop_table("cqrs_snapshots")
