"""cqrs-ddd core: the building blocks of command/query separated, domain-driven systems.

The most used names are importable from here; each subpackage keeps its own
``__all__``: :mod:`cqrs_ddd_core.domain`, :mod:`cqrs_ddd_core.cqrs`,
:mod:`cqrs_ddd_core.ports`, :mod:`cqrs_ddd_core.serialization`,
:mod:`cqrs_ddd_core.adapters.memory` and :mod:`cqrs_ddd_core.exceptions`.
"""

from __future__ import annotations

from cqrs_ddd_core.adapters.memory import (
    InMemoryMessagePublisher,
    InMemoryRepository,
    InMemoryUnitOfWork,
)
from cqrs_ddd_core.cqrs import (
    Command,
    CommandHandler,
    CommandResponse,
    EventDispatcher,
    HandlerRegistry,
    LoggingBehavior,
    Mediator,
    MessageTypeRegistry,
    PipelineBehavior,
    Query,
    QueryHandler,
    ValidationBehavior,
    command_scope,
    current_uow,
)
from cqrs_ddd_core.domain import (
    AggregateRoot,
    DomainEvent,
    Entity,
    FieldSpecification,
    Specification,
    ValueObject,
)
from cqrs_ddd_core.exceptions import (
    AggregateNotFoundError,
    ConcurrencyError,
    CqrsDddError,
    DuplicateEventIdError,
    EventDeserializationError,
    EventSchemaVersionError,
    EventSerializationError,
    HandlerNotFoundError,
    MessageDeserializationError,
    NoActiveUnitOfWorkError,
    TransientError,
    UnknownEventTypeError,
    UnknownMessageTypeError,
    ValidationError,
)
from cqrs_ddd_core.ports import (
    EventDispatcherPort,
    EventStore,
    MessagePublisher,
    Repository,
    StoredEvent,
    UnitOfWork,
)
from cqrs_ddd_core.serialization import EventTypeRegistry
from cqrs_ddd_core.wakeup import Wakeup, WakeupListener

__all__ = [
    "AggregateNotFoundError",
    "AggregateRoot",
    "Command",
    "CommandHandler",
    "CommandResponse",
    "ConcurrencyError",
    "CqrsDddError",
    "DomainEvent",
    "DuplicateEventIdError",
    "Entity",
    "EventDeserializationError",
    "EventDispatcher",
    "EventDispatcherPort",
    "EventSchemaVersionError",
    "EventSerializationError",
    "EventStore",
    "EventTypeRegistry",
    "FieldSpecification",
    "HandlerNotFoundError",
    "HandlerRegistry",
    "InMemoryMessagePublisher",
    "InMemoryRepository",
    "InMemoryUnitOfWork",
    "LoggingBehavior",
    "Mediator",
    "MessageDeserializationError",
    "MessagePublisher",
    "MessageTypeRegistry",
    "NoActiveUnitOfWorkError",
    "PipelineBehavior",
    "Query",
    "QueryHandler",
    "Repository",
    "Specification",
    "StoredEvent",
    "TransientError",
    "UnitOfWork",
    "UnknownEventTypeError",
    "UnknownMessageTypeError",
    "ValidationBehavior",
    "ValidationError",
    "ValueObject",
    "Wakeup",
    "WakeupListener",
    "command_scope",
    "current_uow",
]
