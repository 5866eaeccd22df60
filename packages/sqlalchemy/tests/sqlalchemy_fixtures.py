"""Engines on a fresh SQLite file and on a fresh PostgreSQL database, schema migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy import create_engine, upgrade_schema
from cqrs_ddd_testing import PostgresDatabase

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.sqlalchemy_url


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``database_url`` with the schema in place."""
    engine = create_engine(database_url)
    await upgrade_schema(engine)
    yield engine
    await engine.dispose()
