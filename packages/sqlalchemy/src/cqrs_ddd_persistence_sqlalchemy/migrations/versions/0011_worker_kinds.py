"""Record each worker's kind, and set aside outbox messages a relay cannot publish.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_PENDING = sa.text("published_at IS NULL")
_PENDING_AND_NOT_FAILED = sa.text("published_at IS NULL AND failed_at IS NULL")
_FAILED = sa.text("failed_at IS NOT NULL AND published_at IS NULL")


def _index_pending(where: sa.TextClause) -> None:
    op.drop_index("ix_cqrs_outbox_pending", "cqrs_outbox")
    op.create_index(
        "ix_cqrs_outbox_pending",
        "cqrs_outbox",
        ["id"],
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    """Add ``kind`` (projection, relay, outbox-relay, saga-feed...), written with each lease.

    The rows hold every worker's checkpoint and lease; without the kind, a
    tool reading only the database could not tell a projection from a relay.
    Rows written before this revision get their kind the next time their
    worker takes the lease.
    """
    with op.batch_alter_table("cqrs_projections") as table:
        table.add_column(sa.Column("kind", sa.String(64), nullable=True))
    # a message the relay failed on max_attempts times is set aside (its dead letter):
    # the relay goes on past it, an operator sees the error and replays it
    with op.batch_alter_table("cqrs_outbox") as table:
        table.add_column(sa.Column("failed_at", UTCDateTime(), nullable=True))
    # the pending index leaves the rows set aside out; a small one holds those rows alone,
    # by partition key (the later rows of a key wait behind its row set aside)
    _index_pending(_PENDING_AND_NOT_FAILED)
    op.create_index(
        "ix_cqrs_outbox_failed",
        "cqrs_outbox",
        ["partition_key", "id"],
        postgresql_where=_FAILED,
        sqlite_where=_FAILED,
    )


def downgrade() -> None:
    """Drop ``kind``, ``failed_at`` and the index of the rows set aside."""
    op.drop_index("ix_cqrs_outbox_failed", "cqrs_outbox")
    _index_pending(_PENDING)
    with op.batch_alter_table("cqrs_outbox") as table:
        table.drop_column("failed_at")
    with op.batch_alter_table("cqrs_projections") as table:
        table.drop_column("kind")
