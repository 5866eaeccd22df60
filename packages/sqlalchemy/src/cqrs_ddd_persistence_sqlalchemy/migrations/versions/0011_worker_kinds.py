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


def downgrade() -> None:
    """Drop ``kind`` and ``failed_at``."""
    with op.batch_alter_table("cqrs_outbox") as table:
        table.drop_column("failed_at")
    with op.batch_alter_table("cqrs_projections") as table:
        table.drop_column("kind")
