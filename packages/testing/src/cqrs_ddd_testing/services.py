"""The backing services the fixtures talk to, and where to find each one.

Each `Service` names one server (PostgreSQL, Redis, RabbitMQ, NATS JetStream), the
environment variable that holds its URL, the default URL on the loopback interface,
the fixture that gives a test a clean namespace on it and the marker that selects
those tests. The URL is read from the environment only when `Service.url` is called,
never at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = ["NATS", "POSTGRES", "RABBITMQ", "REDIS", "SERVICES", "Service", "redact_url"]


@dataclass(frozen=True, slots=True)
class Service:
    """Describes one backing service: its URL variable, default URL, fixture and marker."""

    name: str
    environment_variable: str
    default_url: str
    default_port: int
    fixture: str
    marker: str
    start_command: str

    def url(self) -> str:
        """Return the URL from the service's environment variable, or the default."""
        return os.environ.get(self.environment_variable) or self.default_url

    def address(self, url: str) -> tuple[str, int]:
        """Return the host and port that `url` points at, with this service's default port.

        Raises `ValueError` when the URL's port is not a number.
        """
        parts = urlsplit(url)
        return parts.hostname or "localhost", parts.port or self.default_port


def redact_url(url: str) -> str:
    """Return `url` with its password replaced by `***`, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


POSTGRES = Service(
    name="PostgreSQL",
    environment_variable="CQRS_DDD_TEST_POSTGRES_URL",
    default_url="postgresql://postgres@127.0.0.1:5432/postgres",
    default_port=5432,
    fixture="postgres_database",
    marker="postgres",
    start_command="pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
)
REDIS = Service(
    name="Redis",
    environment_variable="CQRS_DDD_TEST_REDIS_URL",
    default_url="redis://127.0.0.1:6379/0",
    default_port=6379,
    fixture="redis_namespace",
    marker="redis",
    start_command='redis-server --daemonize yes --port 6379 --save ""',
)
RABBITMQ = Service(
    name="RabbitMQ",
    environment_variable="CQRS_DDD_TEST_RABBITMQ_URL",
    default_url="amqp://guest:guest@127.0.0.1:5672/",
    default_port=5672,
    fixture="rabbitmq_namespace",
    marker="rabbitmq",
    start_command="rabbitmq-server -detached",
)
NATS = Service(
    name="NATS JetStream",
    environment_variable="CQRS_DDD_TEST_NATS_URL",
    default_url="nats://127.0.0.1:4222",
    default_port=4222,
    fixture="nats_namespace",
    marker="nats",
    start_command="nats-server -a 127.0.0.1 -p 4222 -js",
)

SERVICES: tuple[Service, ...] = (POSTGRES, REDIS, RABBITMQ, NATS)
"""Every service the plugin knows, in the order the README lists them."""
