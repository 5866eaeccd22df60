"""Creating and upgrading the schema: one call, never implicitly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "cqrs_ddd_schema_version"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade_schema(engine: AsyncEngine, revision: str = "head") -> None:
    """Create or upgrade the package's tables to ``revision`` (the latest by default).

    Safe to run again: applied migrations are recorded in the
    ``cqrs_ddd_schema_version`` table and skipped. Run it from a deployment
    step or the composition root; nothing in the package runs it on its own.
    """
    with translated_errors(f"upgrade the schema to {revision}"):
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def downgrade_schema(engine: AsyncEngine, revision: str = "base") -> None:
    """Downgrade the package's tables to ``revision`` (dropping them all by default)."""
    with translated_errors(f"downgrade the schema to {revision}"):
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(_config(sync), revision))


async def schema_revision(engine: AsyncEngine) -> str | None:
    """Return the schema revision the database is at (None before the first upgrade)."""

    def read(sync: Connection) -> str | None:
        context = MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()

    with translated_errors("read the schema revision"):
        async with engine.connect() as connection:
            return await connection.run_sync(read)


@dataclass(frozen=True)
class Migration:
    """One migration the package ships: its revision, the one before it, and what it does."""

    revision: str
    down_revision: str | None
    description: str


def migration_history() -> list[Migration]:
    """Return the migrations the package ships, newest first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    return [
        Migration(
            revision=script.revision,
            down_revision=script.down_revision if isinstance(script.down_revision, str) else None,
            description=(script.doc or "").strip(),
        )
        for script in scripts.walk_revisions()
    ]


def head_revision() -> str:
    """Return the newest revision the package ships."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # noqa: S101 - the package ships at least one migration
    return head
