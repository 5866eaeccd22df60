"""The mediator: routes commands and queries through the pipeline to their handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cqrs_ddd_core.cqrs.behaviors import Message, PipelineBehavior, run_pipeline
from cqrs_ddd_core.cqrs.messages import Command, Query
from cqrs_ddd_core.cqrs.outcome import CommandPhase, mark_phase
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.cqrs.scope import command_scope, current_scope
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory


class Mediator:
    """Sends commands and queries to their handlers through the pipeline behaviours.

    For a command, :meth:`send`:

    1. runs the behaviours (first outermost) around the rest: the mediator's
       own, then those the command's handler contributes
       (:meth:`HandlerRegistry.command_behaviors_for`);
    2. opens a fresh unit of work from ``uow_factory`` and makes it ambient;
    3. calls :meth:`_dispatch_command`, which runs the handler and gathers the
       events it produced, stamped with correlation and causation ids, then
       the scope's :meth:`~cqrs_ddd_core.cqrs.scope.CommandScope.before_commit`
       actions;
    4. commits; an exception anywhere before this point rolls everything back
       and no event is dispatched;
    5. hands the events to ``event_dispatcher``, once, after the commit.

    Every exception leaving steps 2-5 keeps its type and is tagged with the
    phase it was raised in (:func:`~cqrs_ddd_core.cqrs.outcome.phase_of`):
    handling, committing (outcome unknown) or after the commit, so that a retry
    behaviour never sends a command again whose changes may be stored.
    Queries run through the same behaviours, without a unit of work.
    The repositories the handler saves through store the events themselves
    (the advanced package's ``EventSourcedRepository`` appends them to the
    event store, in the same unit of work); this mediator stores nothing.
    Subclasses extend :meth:`_dispatch_command` to persist the events no
    repository stored inside the transaction (the advanced package's
    ``EventSourcedMediator`` does).
    """

    def __init__(
        self,
        *,
        registry: HandlerRegistry,
        uow_factory: UnitOfWorkFactory,
        event_dispatcher: EventDispatcherPort | None = None,
        behaviors: Sequence[PipelineBehavior] = (),
    ) -> None:
        self.registry = registry
        self.uow_factory = uow_factory
        self.event_dispatcher = event_dispatcher
        self.behaviors = tuple(behaviors)

    async def send(self, command: Command) -> CommandResponse[Any]:
        """Handle ``command`` in its own transaction and return its response.

        Raises ``HandlerNotFoundError`` when no handler is registered, and
        whatever the behaviours or the handler raise (after rolling back).
        """
        behaviors = self.behaviors + self.registry.command_behaviors_for(type(command))
        response: CommandResponse[Any] = await run_pipeline(behaviors, command, self._execute)
        return response

    async def query(self, query: Query) -> Any:
        """Return the answer of the handler registered for ``query``'s type."""
        return await run_pipeline(self.behaviors, query, self._answer)

    async def _execute(self, message: Message) -> CommandResponse[Any]:
        assert isinstance(message, Command)  # noqa: S101 - send() only passes commands
        correlation_id = message.correlation_id or str(message.command_id)
        phase = CommandPhase.HANDLE
        try:
            async with self.uow_factory() as uow:
                with command_scope(
                    uow, correlation_id=correlation_id, causation_id=str(message.command_id)
                ):
                    response = await self._dispatch_command(message)
                    scope = current_scope()
                    scope.produced = tuple(response.events)
                    await scope.run_before_commit()
                phase = CommandPhase.COMMIT
                await uow.commit()
            phase = CommandPhase.AFTER_COMMIT
            if self.event_dispatcher is not None and response.events:
                await self.event_dispatcher.dispatch(response.events)
        except Exception as error:
            mark_phase(error, phase, message)
            raise
        return response

    async def _answer(self, message: Message) -> Any:
        assert isinstance(message, Query)  # noqa: S101 - query() only passes queries
        handler = self.registry.query_handler_for(type(message))
        return await handler(message)

    async def _dispatch_command(self, command: Command) -> CommandResponse[Any]:
        """Run the command's handler in the ambient unit of work; return what it produced.

        The events are those the handler's repositories saved (in save order)
        followed by any the handler returned in a ``CommandResponse`` that were
        not among them, each stamped with the command's correlation and causation
        ids. Override this to do more inside the transaction, calling
        ``super()._dispatch_command(command)`` first; while it runs,
        ``current_scope().is_stored(event)`` tells which of the events a
        repository already stored with its aggregate.
        """
        handler = self.registry.command_handler_for(type(command))
        outcome = await handler(command)
        scope = current_scope()
        result = outcome
        events: list[DomainEvent] = scope.take_events()
        if isinstance(outcome, CommandResponse):
            result = outcome.result
            seen = {event.event_id for event in events}
            events.extend(
                scope.stamp(event) for event in outcome.events if event.event_id not in seen
            )
        return CommandResponse(
            result=result,
            events=tuple(events),
            correlation_id=scope.correlation_id,
            causation_id=scope.causation_id,
        )
