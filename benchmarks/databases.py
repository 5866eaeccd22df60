"""The databases a run uses: one fresh PostgreSQL database and one SQLite file, shared by all.

Both libraries and the raw driver runs write to the same database, each into
its own tables: ours are ``cqrs_events`` and friends (created by
``upgrade_schema``), eventsourcing's is ``stored_events``, the raw runs' is
``raw_events`` (shaped like ``cqrs_events``).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg


@dataclass(frozen=True)
class PostgresTarget:
    """Where the PostgreSQL server is, and the database this run owns."""

    host: str
    port: int
    user: str
    database: str

    @property
    def sqlalchemy_url(self) -> str:
        """Return the URL our engine takes."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """Return the libpq-style URL asyncpg takes."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def eventsourcing_env(self, pool_size: int = 5) -> dict[str, str]:
        """Return the environment eventsourcing's ``Application`` reads its settings from."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.database,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": "",
            "POSTGRES_POOL_SIZE": str(pool_size),
        }


@dataclass(frozen=True)
class SQLiteTarget:
    """The SQLite file of this run."""

    path: Path

    @property
    def sqlalchemy_url(self) -> str:
        """Return the URL our engine takes."""
        return f"sqlite+aiosqlite:///{self.path}"

    def eventsourcing_env(self) -> dict[str, str]:
        """Return the environment eventsourcing's ``Application`` reads its settings from."""
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.path)}


@asynccontextmanager
async def fresh_postgres(
    host: str = "127.0.0.1", port: int = 5432, user: str = "postgres"
) -> AsyncIterator[PostgresTarget]:
    """Create ``cqrs_ddd_bench_<hex>`` for the run and drop it afterwards, whatever happens."""
    name = f"cqrs_ddd_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(host=host, port=port, user=user, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PostgresTarget(host=host, port=port, user=user, database=name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_sqlite() -> AsyncIterator[SQLiteTarget]:
    """Make a temporary directory holding the run's SQLite file; remove it afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cqrs_ddd_bench_"))
    try:
        yield SQLiteTarget(path=folder / "bench.sqlite")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
