"""Alembic environment: runs the package's migrations on the connection it is handed."""

from __future__ import annotations

from alembic import context

from cqrs_ddd_persistence_sqlalchemy.migrate import VERSION_TABLE
from cqrs_ddd_persistence_sqlalchemy.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
