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
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory


class EventSourcedMediator(Mediator):
    """A drop-in core :class:`~cqrs_ddd_core.cqrs.Mediator` that appends what no repository stored.

    Repositories store the events of the aggregates they save, as the
    aggregate's kind requires (``EventSourcedRepository`` appends them to their
    stream, ``InMemoryRepository`` and ``SQLAlchemyRepository`` keep them with
    the state, the SQL one as outbox rows) and record them in the command as
    stored. This mediator overrides ``_dispatch_command``: after the handler
    ran, still inside the command's unit of work, it hands the orchestrator the
    events no repository stored (those a handler returned in its
    ``CommandResponse`` without saving them), which appends them as its
    registrations say. So every event is stored once, and the commit makes
    state, events and outbox rows durable together; a failure anywhere rolls
    all of them back (the messaging package's ``OutboxTableRelay`` publishes
    the outbox rows). The response holds all of the command's events, stored either way,
    and they are dispatched after the commit. Handlers, queries and behaviours
    work exactly as with the core mediator.
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
            scope = current_scope()
            unstored = [event for event in response.events if not scope.is_stored(event)]
            await self.event_persistence_orchestrator.persist_events(unstored, response)
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
