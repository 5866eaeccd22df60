"""The Alembic migrations of the package's schema (run them with ``upgrade_schema``)."""
