"""Create the saga table.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cqrs_sagas``."""
    op.create_table(
        "cqrs_sagas",
        sa.Column("saga_id", sa.Uuid(), primary_key=True),
        sa.Column("saga_type", sa.String(255), nullable=False),
        sa.Column("correlation_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", JSONDocument, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("saga_type", "correlation_key", name="uq_cqrs_sagas_type_key"),
    )
    op.create_index("ix_cqrs_sagas_status", "cqrs_sagas", ["status", "updated_at"])


def downgrade() -> None:
    """Drop the saga table."""
    op.drop_index("ix_cqrs_sagas_status", "cqrs_sagas")
    op.drop_table("cqrs_sagas")
