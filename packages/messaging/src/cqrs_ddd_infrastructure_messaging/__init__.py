"""cqrs-ddd messaging: the message envelope and publishers for RabbitMQ, NATS JetStream and Redis.

In progress. What exists: :class:`MessageEnvelope` (one event as every
adapter sends it), one publisher per broker, each returning only once the
broker confirmed the message (:class:`RabbitMQPublisher`,
:class:`NatsJetStreamPublisher`, :class:`RedisStreamsPublisher`), with typed
errors, and the event-log relay (:class:`EventLogRelay`, run by
:class:`OutboxWorker` under a lease). Coming: the outbox-table relay, the
inbox consumers, and the reliability scenarios R8 to R10. The package README
says which is which.
"""

from __future__ import annotations

from cqrs_ddd_infrastructure_messaging.envelope import CONTENT_TYPE, EnvelopeError, MessageEnvelope
from cqrs_ddd_infrastructure_messaging.errors import (
    BrokerError,
    BrokerUnavailableError,
    PublishNotConfirmedError,
)
from cqrs_ddd_infrastructure_messaging.inbox import InboxConsumer, PoisonMessageError
from cqrs_ddd_infrastructure_messaging.nats_jetstream import NatsJetStreamPublisher
from cqrs_ddd_infrastructure_messaging.rabbitmq import RabbitMQPublisher
from cqrs_ddd_infrastructure_messaging.redis_streams import RedisStreamsPublisher
from cqrs_ddd_infrastructure_messaging.relay import (
    EnvelopePublisher,
    EventLogRelay,
    OutboxTableRelay,
    OutboxWorker,
)
from cqrs_ddd_infrastructure_messaging.subscribers import (
    NatsJetStreamSubscriber,
    RabbitMQSubscriber,
    RedisStreamsSubscriber,
)

__all__ = [
    "CONTENT_TYPE",
    "BrokerError",
    "BrokerUnavailableError",
    "EnvelopeError",
    "EnvelopePublisher",
    "EventLogRelay",
    "InboxConsumer",
    "MessageEnvelope",
    "NatsJetStreamPublisher",
    "NatsJetStreamSubscriber",
    "OutboxTableRelay",
    "OutboxWorker",
    "PoisonMessageError",
    "PublishNotConfirmedError",
    "RabbitMQPublisher",
    "RabbitMQSubscriber",
    "RedisStreamsPublisher",
    "RedisStreamsSubscriber",
]
