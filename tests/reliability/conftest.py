"""Fixtures of the reliability scenarios: the run's seed and a migrated PostgreSQL engine.

Soak-size variants (``@pytest.mark.soak``) run only on demand: they are skipped
unless the ``-m`` expression names ``soak`` (``pytest -m soak tests/reliability``),
so a plain ``pytest tests/reliability`` stays at CI size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scenario_support import failure_note, scenario_seed
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy import create_engine, upgrade_schema
from cqrs_ddd_testing import PostgresDatabase

HERE = Path(__file__).parent

SCENARIO_APPLICATION_NAME = "cqrs_ddd_reliability"
"""The ``application_name`` of the scenarios' own engines."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's soak-size tests unless ``-m`` asks for them."""
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="soak size: run with -m soak")
    for item in items:
        if item.get_closest_marker("soak") is not None and item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture
def seed() -> int:
    """The seed of this test's random choices, printed (shown when the test fails)."""
    value = scenario_seed()
    print(f"reliability seed: {value} {failure_note(value)}")  # noqa: T201 - shown on failure
    return value


@pytest.fixture
async def pg_engine(postgres_database: PostgresDatabase) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh PostgreSQL database with the schema in place."""
    engine = create_engine(
        postgres_database.sqlalchemy_url,
        application_name=SCENARIO_APPLICATION_NAME,
        pool_size=12,
    )
    await upgrade_schema(engine)
    yield engine
    await engine.dispose()
