"""Fixtures of the reliability scenarios: the run's seed and a migrated PostgreSQL engine.

Soak-size variants (``@pytest.mark.soak``) run only on demand: they are skipped
unless the ``-m`` expression names ``soak`` (``pytest -m soak tests/reliability``),
so a plain ``pytest tests/reliability`` stays at CI size.

A scenario may run for 10 minutes, a soak size for an hour, rather than the
workspace's 2 minutes per test (pytest-timeout, configured in the root
pyproject.toml); a test that hangs fails at that limit instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from relay_support import BROKERS, Broker, RelayScenario, scenario_tables
from scenario_support import failure_note, scenario_seed
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy import create_engine, upgrade_schema
from cqrs_ddd_testing import NatsNamespace, PostgresDatabase, RabbitMQNamespace, RedisNamespace

HERE = Path(__file__).parent

SCENARIO_APPLICATION_NAME = "cqrs_ddd_reliability"
"""The ``application_name`` of the scenarios' own engines."""


SCENARIO_TIMEOUT = 600
"""Seconds a CI-size scenario of this directory may run (the workspace default is 120)."""

SOAK_TIMEOUT = 3600
"""Seconds a soak-size scenario (``-m soak``) may run."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give this directory's tests their longer timeouts; skip soak sizes unless ``-m`` asks.

    A test's own ``@pytest.mark.timeout`` is kept, and so is an explicit
    ``--timeout`` on the command line (or ``PYTEST_TIMEOUT``): ``--timeout=0``
    lifts every limit, to debug a scenario.
    """
    here = [item for item in items if item.path.is_relative_to(HERE)]
    timeout_given = (
        config.getoption("timeout", default=None) is not None or "PYTEST_TIMEOUT" in os.environ
    )
    for item in here:
        if timeout_given or item.get_closest_marker("timeout") is not None:
            continue
        soak = item.get_closest_marker("soak") is not None
        item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT if soak else SCENARIO_TIMEOUT))
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="soak size: run with -m soak")
    for item in here:
        if item.get_closest_marker("soak") is not None:
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


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Broker:
    """One broker (RabbitMQ, NATS JetStream, Redis Streams) with names of this test alone.

    The names are recorded in the broker's namespace fixture, which deletes
    them after the test.
    """
    kind = request.param
    if kind == "rabbitmq":
        rabbitmq: RabbitMQNamespace = request.getfixturevalue("rabbitmq_namespace")
        space = rabbitmq.name("deposits")
        for suffix in ("consumer", "consumer.dead", "observer"):
            rabbitmq.name(f"deposits.{suffix}")
        return Broker(kind, rabbitmq.url, space)
    if kind == "nats":
        jetstream: NatsNamespace = request.getfixturevalue("nats_namespace")
        return Broker(kind, jetstream.url, jetstream.stream("deposits"))
    redis: RedisNamespace = request.getfixturevalue("redis_namespace")
    return Broker(kind, redis.url, redis.key("deposits"))


@pytest.fixture
async def relay_engine(pg_engine: AsyncEngine) -> AsyncEngine:
    """``pg_engine`` with the scenarios' effect table."""
    async with pg_engine.begin() as connection:
        await connection.run_sync(scenario_tables.create_all)
    return pg_engine


@pytest.fixture
def relay_scenario(
    broker: Broker,
    relay_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
) -> RelayScenario:
    """What a run of R8, R9 or R10 works with (see ``relay_support.RelayScenario``)."""
    return RelayScenario(broker, relay_engine, postgres_database.sqlalchemy_url, tmp_path, seed)
