"""``EventSourcedMediator``: the core mediator, appending events within the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typing_extensions import override

from cqrs_ddd_advanced_core.domain.exceptions import EventSourcingConfigurationError
from cqrs_ddd_advanced_core.event_sourcing.persistence_orchestrator import (
    AggregateTypeRef,
    EventSourcedPersistenceOrchestrator,
)
from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.mediator import Mediator
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory


class EventSourcedMediator(Mediator):
    """A drop-in :class:`~cqrs_ddd_core.cqrs.Mediator` that also appends events to the event store.

    It overrides ``_dispatch_command``: after the handler ran, still inside the
    command's unit of work, the orchestrator appends the events of
    event-sourced aggregates; the commit then makes state, events and outbox
    rows durable together, and a failure anywhere rolls all of them back.
    (Outbox rows are only written: no relay publishes them yet.) Handlers,
    queries and behaviours work exactly as with the core mediator.
    """

    def __init__(
        self,
        *,
        registry: HandlerRegistry,
        uow_factory: UnitOfWorkFactory,
        event_persistence_orchestrator: EventSourcedPersistenceOrchestrator | None = None,
        event_dispatcher: EventDispatcherPort | None = None,
        behaviors: Sequence[PipelineBehavior] = (),
    ) -> None:
        super().__init__(
            registry=registry,
            uow_factory=uow_factory,
            event_dispatcher=event_dispatcher,
            behaviors=behaviors,
        )
        self.event_persistence_orchestrator = event_persistence_orchestrator

    @override
    async def _dispatch_command(self, command: Command) -> CommandResponse[Any]:
        response = await super()._dispatch_command(command)
        if self.event_persistence_orchestrator is not None:
            await self.event_persistence_orchestrator.persist_events(response.events, response)
        return response

    def configure_event_sourced_type(
        self, aggregate_type: AggregateTypeRef, event_store: EventStore | None = None
    ) -> None:
        """Register ``aggregate_type`` as event-sourced on this mediator's orchestrator."""
        self._orchestrator("configure_event_sourced_type").register_event_sourced_type(
            aggregate_type, event_store
        )

    def configure_non_event_sourced_type(self, aggregate_type: AggregateTypeRef) -> None:
        """Register ``aggregate_type`` as state-stored on this mediator's orchestrator."""
        self._orchestrator("configure_non_event_sourced_type").register_non_event_sourced_type(
            aggregate_type
        )

    def _orchestrator(self, operation: str) -> EventSourcedPersistenceOrchestrator:
        if self.event_persistence_orchestrator is None:
            raise EventSourcingConfigurationError(
                f"{operation} needs an orchestrator: build the EventSourcedMediator with "
                "event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(...)"
            )
        return self.event_persistence_orchestrator
