"""cqrs-ddd messaging: an empty placeholder, with nothing to import yet.

Coming here: the outbox relay and the broker adapters (publishers and inbox
consumers for RabbitMQ, NATS JetStream and Redis Streams). None of them exists
today; the package README lists them.
"""

from __future__ import annotations

__all__: list[str] = []
