"""Create the TCC branch barrier table; mark the saga instances that recovery looks for.

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
    """Create ``cqrs_saga_barrier``; add ``cqrs_sagas.in_flight``."""
    with op.batch_alter_table("cqrs_sagas") as table:
        table.add_column(
            sa.Column("in_flight", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE cqrs_sagas SET in_flight = (status IN ('running', 'compensating', 'confirming'))"
    )
    op.create_index("ix_cqrs_sagas_in_flight", "cqrs_sagas", ["in_flight", "updated_at"])
    op.create_table(
        "cqrs_saga_barrier",
        sa.Column("saga_id", sa.Uuid(), primary_key=True),
        sa.Column("branch", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(16), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    """Drop the barrier table and ``cqrs_sagas.in_flight``."""
    op.drop_table("cqrs_saga_barrier")
    op.drop_index("ix_cqrs_sagas_in_flight", "cqrs_sagas")
    with op.batch_alter_table("cqrs_sagas") as table:
        table.drop_column("in_flight")
