"""Create the scheduled command and recurring schedule tables.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CLAIMABLE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    """Create ``cqrs_scheduled_commands`` and ``cqrs_recurring_schedules``."""
    op.create_table(
        "cqrs_scheduled_commands",
        sa.Column("schedule_id", sa.Uuid(), primary_key=True),
        sa.Column("command_type", sa.String(255), nullable=False),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("available_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("recurrence", sa.String(255), nullable=True),
    )
    op.create_index(
        "ix_cqrs_scheduled_commands_claimable",
        "cqrs_scheduled_commands",
        ["available_at"],
        postgresql_where=_CLAIMABLE,
        sqlite_where=_CLAIMABLE,
    )
    op.create_index(
        "ix_cqrs_scheduled_commands_status",
        "cqrs_scheduled_commands",
        ["status", "finished_at"],
    )
    op.create_table(
        "cqrs_recurring_schedules",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("command_type", sa.String(255), nullable=False),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("cron", sa.String(255), nullable=True),
        sa.Column("every", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("missed", sa.String(16), nullable=False),
        sa.Column("grace", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    """Drop the scheduling tables."""
    op.drop_table("cqrs_recurring_schedules")
    op.drop_index("ix_cqrs_scheduled_commands_status", "cqrs_scheduled_commands")
    op.drop_index("ix_cqrs_scheduled_commands_claimable", "cqrs_scheduled_commands")
    op.drop_table("cqrs_scheduled_commands")
