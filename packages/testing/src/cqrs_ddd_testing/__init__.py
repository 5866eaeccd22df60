"""Clean databases and broker namespaces for tests that talk to real services.

Installing `cqrs-ddd-testing` registers the pytest plugin `cqrs_ddd_testing.plugin`,
which offers the fixtures `postgres_database`, `redis_namespace`,
`rabbitmq_namespace` and `nats_namespace`. This module exports the types those
fixtures yield (for annotations) and the plain async functions that make and
remove each namespace, for code that manages one outside a fixture.
"""

from __future__ import annotations

from cqrs_ddd_testing.availability import REQUIRE_SERVICES_VARIABLE, ServiceProbe
from cqrs_ddd_testing.naming import unique_name
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
from cqrs_ddd_testing.services import NATS, POSTGRES, RABBITMQ, REDIS, SERVICES, Service

__all__ = [
    "NATS",
    "POSTGRES",
    "RABBITMQ",
    "REDIS",
    "REQUIRE_SERVICES_VARIABLE",
    "SERVICES",
    "NatsNamespace",
    "PostgresDatabase",
    "RabbitMQNamespace",
    "RedisNamespace",
    "Service",
    "ServiceProbe",
    "create_database",
    "delete_nats_namespace",
    "delete_rabbitmq_namespace",
    "delete_redis_namespace",
    "drop_database",
    "new_nats_namespace",
    "new_rabbitmq_namespace",
    "new_redis_namespace",
    "unique_name",
]
