"""Create the TCC branch barrier table.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cqrs_saga_barrier``."""
    op.create_table(
        "cqrs_saga_barrier",
        sa.Column("saga_id", sa.Uuid(), primary_key=True),
        sa.Column("branch", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(16), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    """Drop the barrier table."""
    op.drop_table("cqrs_saga_barrier")
