"""cqrs-ddd messaging: the outbox relays, broker publishers and inbox consumers.

:class:`MessageEnvelope` is one event as every adapter sends it. One
publisher per broker returns only once the broker confirmed the message
(:class:`RabbitMQPublisher`, :class:`NatsJetStreamPublisher`,
:class:`RedisStreamsPublisher`). The relays publish committed events in order
per aggregate: :class:`EventLogRelay` from the event log,
:class:`OutboxTableRelay` from the outbox table, each run by
:class:`OutboxWorker` under a lease per partition. :class:`InboxConsumer` with
a subscriber per broker (:class:`RabbitMQSubscriber`,
:class:`NatsJetStreamSubscriber`, :class:`RedisStreamsSubscriber`) gives each
message one effect and dead-letters what cannot be handled. The package
README has the guarantees per broker.
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
    RelayPartition,
    RelayReplay,
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
    "RelayPartition",
    "RelayReplay",
]
