"""Which broker the shop publishes its events to, and where on it.

``RABBITMQ_URL``, ``NATS_URL`` or ``REDIS_URL`` (the first one set, in that
order) names the broker; with none set the shop publishes nothing. Every
event of the event log goes out, in order per order and product, under the
name ``shop`` (``SHOP_TOPIC`` changes it):

- RabbitMQ: the topic exchange ``shop``, routing key ``shop.<EventType>``;
- NATS JetStream: the stream ``shop``, subject ``shop.<EventType>``;
- Redis Streams: the stream ``shop.events``.

Each consumer gets its own queue, durable consumer or group (``group``), so
several services read the same events.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cqrs_ddd_infrastructure_messaging import (
    InboxConsumer,
    MessageEnvelope,
    NatsJetStreamPublisher,
    NatsJetStreamSubscriber,
    RabbitMQPublisher,
    RabbitMQSubscriber,
    RedisStreamsPublisher,
    RedisStreamsSubscriber,
)
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher

BrokerKind = Literal["rabbitmq", "nats", "redis"]

BROKER_VARIABLES: dict[str, BrokerKind] = {
    "RABBITMQ_URL": "rabbitmq",
    "NATS_URL": "nats",
    "REDIS_URL": "redis",
}

Subscriber = RabbitMQSubscriber | NatsJetStreamSubscriber | RedisStreamsSubscriber


@dataclass(frozen=True)
class Broker:
    """One broker, and the name the shop's events go under on it."""

    kind: BrokerKind
    url: str
    space: str = "shop"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Broker | None:
        """Return the broker the environment names, or None."""
        environment = os.environ if environ is None else environ
        space = environment.get("SHOP_TOPIC") or "shop"
        for variable, kind in BROKER_VARIABLES.items():
            if environment.get(variable):
                return cls(kind, environment[variable], space)
        return None

    def topic(self, envelope: MessageEnvelope) -> str:
        """Return where ``envelope`` is published."""
        if self.kind == "redis":
            return f"{self.space}.events"
        return f"{self.space}.{envelope.event_type}"

    def publisher(self) -> BrokerPublisher:
        """Return a publisher to this broker (not connected yet)."""
        if self.kind == "rabbitmq":
            return RabbitMQPublisher(self.url, exchange=self.space)
        if self.kind == "nats":
            return NatsJetStreamPublisher(self.url, stream=self.space, subjects=[f"{self.space}.>"])
        return RedisStreamsPublisher(self.url)

    def subscriber(self, consumer: InboxConsumer, *, group: str) -> Subscriber:
        """Return a subscriber feeding ``consumer`` every shop event, as the consumer ``group``."""
        if self.kind == "rabbitmq":
            return RabbitMQSubscriber(
                consumer, self.url, exchange=self.space, queue=f"{self.space}.{group}"
            )
        if self.kind == "nats":
            return NatsJetStreamSubscriber(
                consumer,
                self.url,
                stream=self.space,
                subject=f"{self.space}.>",
                durable=group,
                dead_letter_subject=f"{self.space}.dead.{group}",
            )
        return RedisStreamsSubscriber(
            consumer,
            self.url,
            stream=f"{self.space}.events",
            group=group,
            name=f"{group}-{os.getpid()}",
            dead_letter_stream=f"{self.space}.dead.{group}",
        )
