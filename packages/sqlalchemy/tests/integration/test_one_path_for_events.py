"""One path for a command's events, on SQLite and PostgreSQL: event log or outbox, never both.

The repository that saves an aggregate decides: ``EventSourcedRepository``
appends the events to ``cqrs_events``; ``SQLAlchemyRepository`` writes them to
``cqrs_outbox`` with the state, whatever the orchestrator's registrations say.
Only events a handler returns without saving them are the orchestrator's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
    aggregate_event_handler,
    non_event_sourced,
)
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    CommandResponse,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events, outbox

pytest_plugins = ["sqlalchemy_fixtures"]


class Touched(DomainEvent):
    pass


class Ledger(EventSourcedAggregateMixin, AggregateRoot):
    """Event-sourced: rebuilt from its events."""

    touches: int = 0

    def touch(self) -> None:
        self.trigger_event(Touched())

    @aggregate_event_handler
    def _touched(self, event: Touched) -> None:
        self.touches += 1


class Profile(AggregateRoot):
    """State-stored, neither marked nor registered."""

    touches: int = 0

    def touch(self) -> None:
        self.touches += 1
        self.record_event(Touched())


@non_event_sourced
class Preferences(AggregateRoot):
    """State-stored and marked."""

    touches: int = 0

    def touch(self) -> None:
        self.touches += 1
        self.record_event(Touched())


class Touch(Command):
    aggregate_id: str


@dataclass(frozen=True)
class Case:
    """One kind of aggregate, how it is saved, and the rows two commands on it leave."""

    aggregate_type: type[Any]
    registered_event_sourced: bool
    event_rows: int
    outbox_rows: int


CASES = {
    "event-sourced": Case(Ledger, False, event_rows=2, outbox_rows=0),
    "state-stored": Case(Profile, False, event_rows=0, outbox_rows=2),
    "state-stored-registered-event-sourced": Case(Profile, True, event_rows=0, outbox_rows=2),
    "marked-non-event-sourced": Case(Preferences, False, event_rows=0, outbox_rows=2),
}


def repository_for(aggregate_type: type[Any], engine: AsyncEngine) -> Any:
    if aggregate_type is Ledger:
        loader = EventSourcedLoader(
            Ledger, SQLAlchemyEventStore(engine), EventTypeRegistry([Touched])
        )
        return EventSourcedRepository(loader)
    return SQLAlchemyRepository(aggregate_type, engine)


def mediator_factory(engine: AsyncEngine, registry: HandlerRegistry) -> EventSourcedMediatorFactory:
    return EventSourcedMediatorFactory(
        event_store=SQLAlchemyEventStore(engine),
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
        handler_registry=registry,
    )


def touching(repository: Any, build: Callable[[str], Any]) -> HandlerRegistry:
    """Return a registry whose ``Touch`` handler loads (or builds), touches and saves."""
    registry = HandlerRegistry()

    @registry.command_handler(Touch)
    async def touch(command: Touch) -> int:
        aggregate = await repository.find(command.aggregate_id) or build(command.aggregate_id)
        aggregate.touch()
        await repository.save(aggregate)
        return int(aggregate.touches)

    return registry


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_each_kind_of_aggregate_keeps_its_events_in_one_place_only(
    engine: AsyncEngine, case: Case
) -> None:
    # given
    repository = repository_for(case.aggregate_type, engine)
    factory = mediator_factory(
        engine, touching(repository, lambda aggregate_id: case.aggregate_type(id=aggregate_id))
    )
    if case.registered_event_sourced:
        factory.register_event_sourced_type(case.aggregate_type)
    mediator = factory.create()
    # when: one command creates the aggregate, a second one changes it
    await mediator.send(Touch(aggregate_id="a-1"))
    response = await mediator.send(Touch(aggregate_id="a-1"))
    # then: the response carries the event, and it is stored in one table only
    assert response.result == 2
    assert [event.version for event in response.events] == [2]
    assert await count(engine, events) == case.event_rows
    assert await count(engine, outbox) == case.outbox_rows


@pytest.mark.parametrize(
    ("registered_state_stored", "event_rows"),
    [(False, 1), (True, 0)],
    ids=["default", "registered"],
)
async def test_events_a_handler_returns_without_a_repository_follow_the_registrations(
    engine: AsyncEngine, registered_state_stored: bool, event_rows: int
) -> None:
    # given: a handler that returns a new ledger's events instead of saving it
    registry = HandlerRegistry()

    @registry.command_handler(Touch)
    async def touch(command: Touch) -> CommandResponse[None]:
        ledger = Ledger(id=command.aggregate_id)
        ledger.touch()
        return CommandResponse(result=None, events=ledger.collect_events())

    factory = mediator_factory(engine, registry)
    if registered_state_stored:
        factory.register_non_event_sourced_type(Ledger)
    # when
    response = await factory.create().send(Touch(aggregate_id="l-1"))
    # then
    assert len(response.events) == 1
    assert await count(engine, events) == event_rows
    assert await count(engine, outbox) == 0
