"""The pytest plugin: per-test databases and broker namespaces, and their markers.

pytest loads it through the `pytest11` entry point `cqrs_ddd_services` as soon as
`cqrs-ddd-testing` is installed. Every fixture first asks the session's
`ServiceProbe` whether its service answers (skip, or fail under
`CQRS_DDD_REQUIRE_SERVICES=1`), then makes a unique namespace, yields it and
removes it after the test, whatever the test's outcome. A test that uses one of
the fixtures, directly or through another fixture, gets the service's marker, so
`pytest -m postgres` selects it.

The `browser` fixture (from `cqrs_ddd_testing.browser`) gives a test a headless
Chromium the same way: skipped when Chromium is not installed, failed under
`CQRS_DDD_REQUIRE_SERVICES=1`, and its tests carry the `browser` marker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from cqrs_ddd_testing.availability import ServiceProbe
from cqrs_ddd_testing.browser import BROWSER_MARKER, browser
from cqrs_ddd_testing.nats_namespace import (
    NatsNamespace,
    delete_nats_namespace,
    new_nats_namespace,
)
from cqrs_ddd_testing.postgres_database import PostgresDatabase, create_database, drop_database
from cqrs_ddd_testing.rabbitmq_namespace import (
    RabbitMQNamespace,
    delete_rabbitmq_namespace,
    new_rabbitmq_namespace,
)
from cqrs_ddd_testing.redis_namespace import (
    RedisNamespace,
    delete_redis_namespace,
    new_redis_namespace,
)
from cqrs_ddd_testing.services import NATS, POSTGRES, RABBITMQ, REDIS, SERVICES

__all__ = [
    "browser",
    "cqrs_ddd_service_probe",
    "nats_namespace",
    "postgres_database",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "rabbitmq_namespace",
    "redis_namespace",
]


def pytest_configure(config: pytest.Config) -> None:
    """Register one marker per service and the browser's, so `--strict-markers` accepts them."""
    for service in SERVICES:
        config.addinivalue_line("markers", f"{service.marker}: needs the {service.name} service")
    config.addinivalue_line(
        "markers", f"{BROWSER_MARKER}: needs headless Chromium and chromedriver"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that uses a service fixture (or `browser`) with its marker.

    It runs first, before `-m` deselects anything, so the markers take part in
    the selection.
    """
    for item in items:
        fixture_names = getattr(item, "fixturenames", ())
        for service in SERVICES:
            if service.fixture in fixture_names:
                item.add_marker(service.marker)
        if "browser" in fixture_names:
            item.add_marker(BROWSER_MARKER)


@pytest.fixture(scope="session")
def cqrs_ddd_service_probe() -> ServiceProbe:
    """Give the session's probe, which remembers which services answer."""
    return ServiceProbe()


@pytest_asyncio.fixture
async def postgres_database(
    cqrs_ddd_service_probe: ServiceProbe,
) -> AsyncIterator[PostgresDatabase]:
    """Give the test an empty PostgreSQL database of its own, dropped afterwards."""
    admin_url = POSTGRES.url()
    await cqrs_ddd_service_probe.require(POSTGRES, admin_url)
    database = await create_database(admin_url)
    try:
        yield database
    finally:
        await drop_database(admin_url, database.name)


@pytest_asyncio.fixture
async def redis_namespace(cqrs_ddd_service_probe: ServiceProbe) -> AsyncIterator[RedisNamespace]:
    """Give the test a Redis key prefix of its own; its keys are deleted afterwards."""
    url = REDIS.url()
    await cqrs_ddd_service_probe.require(REDIS, url)
    namespace = new_redis_namespace(url)
    try:
        yield namespace
    finally:
        await delete_redis_namespace(namespace)


@pytest_asyncio.fixture
async def rabbitmq_namespace(
    cqrs_ddd_service_probe: ServiceProbe,
) -> AsyncIterator[RabbitMQNamespace]:
    """Give the test a RabbitMQ name prefix; queues and exchanges named through it go after."""
    url = RABBITMQ.url()
    await cqrs_ddd_service_probe.require(RABBITMQ, url)
    namespace = new_rabbitmq_namespace(url)
    try:
        yield namespace
    finally:
        await delete_rabbitmq_namespace(namespace)


@pytest_asyncio.fixture
async def nats_namespace(cqrs_ddd_service_probe: ServiceProbe) -> AsyncIterator[NatsNamespace]:
    """Give the test a NATS subject and stream prefix; its JetStream streams go after."""
    url = NATS.url()
    await cqrs_ddd_service_probe.require(NATS, url)
    namespace = new_nats_namespace(url)
    try:
        yield namespace
    finally:
        await delete_nats_namespace(namespace)
