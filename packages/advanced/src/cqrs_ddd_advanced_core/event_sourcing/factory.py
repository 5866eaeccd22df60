"""``EventSourcedMediatorFactory``: one place to configure and build an ``EventSourcedMediator``."""

from __future__ import annotations

from collections.abc import Sequence

from cqrs_ddd_advanced_core.event_sourcing.mediator import EventSourcedMediator
from cqrs_ddd_advanced_core.event_sourcing.persistence_orchestrator import (
    AggregateTypeRef,
    EventSourcedPersistenceOrchestrator,
)
from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory


class EventSourcedMediatorFactory:
    """Collects event-sourcing choices, then builds a configured ``EventSourcedMediator``.

    ``event_store`` becomes the orchestrator's default store. Types registered
    here (or marked ``@non_event_sourced``) are routed as the orchestrator
    describes; every mediator :meth:`create` returns shares this factory's
    orchestrator, so later registrations apply to them too.
    """

    def __init__(
        self,
        event_store: EventStore,
        uow_factory: UnitOfWorkFactory,
        handler_registry: HandlerRegistry,
        event_dispatcher: EventDispatcherPort | None = None,
        behaviors: Sequence[PipelineBehavior] = (),
    ) -> None:
        self.orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=event_store)
        self.uow_factory = uow_factory
        self.handler_registry = handler_registry
        self.event_dispatcher = event_dispatcher
        self.behaviors = tuple(behaviors)

    def register_event_sourced_type(
        self, aggregate_type: AggregateTypeRef, event_store: EventStore | None = None
    ) -> None:
        """Keep the events of ``aggregate_type`` in ``event_store`` (default: the factory's)."""
        self.orchestrator.register_event_sourced_type(aggregate_type, event_store)

    def register_non_event_sourced_type(self, aggregate_type: AggregateTypeRef) -> None:
        """Treat ``aggregate_type`` as state-stored."""
        self.orchestrator.register_non_event_sourced_type(aggregate_type)

    def create(self) -> EventSourcedMediator:
        """Return a mediator wired to this factory's orchestrator, registry and unit of work."""
        return EventSourcedMediator(
            registry=self.handler_registry,
            uow_factory=self.uow_factory,
            event_persistence_orchestrator=self.orchestrator,
            event_dispatcher=self.event_dispatcher,
            behaviors=self.behaviors,
        )
