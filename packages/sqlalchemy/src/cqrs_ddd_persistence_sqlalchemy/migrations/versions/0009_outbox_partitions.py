"""Give outbox rows the hash relays partition them by.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cqrs_ddd_advanced_core.outbox import partition_hash

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``cqrs_outbox.partition_hash``, computed for the rows not yet published.

    Published rows get 0. The column has no default afterwards: a writer from
    before this revision, which leaves it out, fails loudly instead of putting
    its rows in partition 0 (out of order with the same aggregate's rows of
    another partition).
    """
    with op.batch_alter_table("cqrs_outbox") as table:
        table.add_column(
            sa.Column("partition_hash", sa.Integer(), nullable=False, server_default="0")
        )
    connection = op.get_bind()
    unpublished = connection.execute(
        sa.text("SELECT id, partition_key FROM cqrs_outbox WHERE published_at IS NULL")
    ).all()
    if unpublished:
        connection.execute(
            sa.text("UPDATE cqrs_outbox SET partition_hash = :hash WHERE id = :id"),
            [{"id": row.id, "hash": partition_hash(row.partition_key)} for row in unpublished],
        )
    with op.batch_alter_table("cqrs_outbox") as table:  # a writer that omits it fails
        table.alter_column("partition_hash", server_default=None)


def downgrade() -> None:
    """Drop ``cqrs_outbox.partition_hash``."""
    with op.batch_alter_table("cqrs_outbox") as table:
        table.drop_column("partition_hash")
