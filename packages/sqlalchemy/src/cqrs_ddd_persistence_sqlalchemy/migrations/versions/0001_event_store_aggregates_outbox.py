"""Create the event store, the state-stored aggregates and the outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "cqrs_events",
        sa.Column("position", Position, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("aggregate_type", sa.String(255), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("causation_id", sa.String(255), nullable=True),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("metadata", JSONDocument, nullable=False),
        sa.UniqueConstraint("stream_id", "version", name="uq_cqrs_events_stream_version"),
        sa.UniqueConstraint("stream_id", "event_id", name="uq_cqrs_events_stream_event_id"),
    )
    op.create_table(
        "cqrs_aggregates",
        sa.Column("aggregate_type", sa.String(255), primary_key=True),
        sa.Column("aggregate_id", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", JSONDocument, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "cqrs_outbox",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition_key", sa.String(255), nullable=True),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(2000), nullable=True),
    )
    op.create_index("ix_cqrs_outbox_unpublished", "cqrs_outbox", ["published_at", "id"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_cqrs_outbox_unpublished", table_name="cqrs_outbox")
    op.drop_table("cqrs_outbox")
    op.drop_table("cqrs_aggregates")
    op.drop_table("cqrs_events")
