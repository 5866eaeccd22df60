"""ConflictBehavior and ConflictCommandHandler: conflicts resolved on fresh state, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from resilience_test_model import (
    Order,
    OrderUpdated,
    RaceGate,
    UpdateOrder,
    in_memory_mediator,
    stored_order,
)

from cqrs_ddd_advanced_core import (
    ConflictBehavior,
    ConflictCommandHandler,
    ConflictHandlerError,
    ConflictResolved,
    DeepMergeStrategy,
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
    FieldMergeStrategy,
    MergeStrategy,
    UnresolvableConflictError,
    aggregate_event_handler,
    attempts_of,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_advanced_core.cqrs import ConflictContext
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    ValidationError,
)
from cqrs_ddd_core.cqrs import CommandPhase, phase_of


class MergingUpdateOrderHandler(ConflictCommandHandler[UpdateOrder]):
    """Updates an order; after a conflict, merges the changes with ``strategy``."""

    def __init__(
        self,
        repo: InMemoryRepository[Order],
        *,
        strategy: MergeStrategy | None = None,
        gate: RaceGate | None = None,
    ) -> None:
        self.repo = repo
        self.strategy = strategy or DeepMergeStrategy(list_identity_key="id")
        self.gate = gate
        self.handled = 0
        self.resolved = 0

    async def _handle_internal(self, command: UpdateOrder) -> None:
        self.handled += 1
        order = await self.repo.get(command.order_id)
        if self.gate is not None:
            await self.gate.wait(command)
        order.update(command.changes)
        await self.repo.save(order)

    def resolve_conflict(self, existing: Order, incoming: dict[str, Any]) -> Order:
        self.resolved += 1
        return Order(**self.strategy.merge(existing.model_dump(), incoming))


class ReExecutingUpdateOrderHandler(MergingUpdateOrderHandler):
    """The same handler without a ``resolve_conflict`` of its own: it handles again."""

    resolve_conflict = ConflictCommandHandler.resolve_conflict


def registry_with(handler: ConflictCommandHandler[Any]) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register_command_handler(UpdateOrder, handler)
    return registry


async def race(mediator: Any, *commands: Command) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(mediator.send(command) for command in commands), return_exceptions=True),
        timeout=30,
    )


def raised(outcomes: Sequence[Any]) -> list[BaseException]:
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]


# ---------------------------------------------------------------- resolving


async def test_a_plain_handler_runs_again_on_the_fresh_state_after_a_conflict() -> None:
    # given: a function handler and the behaviour around every command
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    gate, loaded = RaceGate(), []
    registry = HandlerRegistry()

    @registry.command_handler(UpdateOrder)
    async def update(command: UpdateOrder) -> None:
        order = await orders.get(command.order_id)
        loaded.append(order.version)
        await gate.wait(command)
        order.update(command.changes)
        await orders.save(order)

    mediator = in_memory_mediator(registry, behaviors=[ConflictBehavior()])
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"note": "gift"}),
    )
    # then: both succeed; the loser ran again on version 2 instead of re-sending version 1
    assert raised(outcomes) == []
    assert sorted(loaded) == [1, 1, 2]
    stored = await orders.get("o-1")
    assert (stored.version, stored.status, stored.note) == (3, "paid", "gift")


async def test_a_conflict_handler_merges_the_incoming_changes_into_the_fresh_aggregate() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = MergingUpdateOrderHandler(orders, gate=RaceGate())
    mediator = in_memory_mediator(registry_with(handler))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"customer": {"name": "Ada"}}),
        UpdateOrder(order_id="o-1", changes={"customer": {"email": "ada@example.com"}}),
    )
    # then: both changes are stored; the loser's went through resolve_conflict once
    assert raised(outcomes) == []
    stored = await orders.get("o-1")
    assert stored.customer == {"name": "Ada", "email": "ada@example.com"}
    assert stored.version == 3
    assert (handler.handled, handler.resolved) == (2, 1)
    resolution = [o for o in outcomes if isinstance(o.events[0], ConflictResolved)]
    (event,) = resolution[0].events
    assert event.version == 3
    assert event.state["customer"] == {"name": "Ada", "email": "ada@example.com"}
    assert event.changes in (
        {"customer": {"name": "Ada"}},
        {"customer": {"email": "ada@example.com"}},
    )


async def test_without_resolve_conflict_the_handler_handles_the_command_again() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = ReExecutingUpdateOrderHandler(orders, gate=RaceGate())
    mediator = in_memory_mediator(registry_with(handler))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"note": "gift"}),
    )
    # then
    assert raised(outcomes) == []
    assert (handler.handled, handler.resolved) == (3, 0)
    assert all(isinstance(o.events[0], OrderUpdated) for o in outcomes)
    stored = await orders.get("o-1")
    assert (stored.status, stored.note) == ("paid", "gift")


async def test_a_resolution_is_saved_against_the_fresh_version_so_a_later_writer_conflicts() -> (
    None
):
    # given: while the loser resolves, a third writer commits first
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    third = in_memory_mediator(registry_with(MergingUpdateOrderHandler(orders)))

    class Interrupted(MergingUpdateOrderHandler):
        async def load_existing(self, command: UpdateOrder, context: ConflictContext) -> Order:
            existing = await super().load_existing(command, context)
            if context.attempt == 2:
                await third.send(UpdateOrder(order_id="o-1", changes={"items": [{"id": 1}]}))
            assert isinstance(existing, Order)
            return existing

    handler = Interrupted(orders, gate=RaceGate())
    mediator = in_memory_mediator(registry_with(handler))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"note": "gift"}),
    )
    # then: the first resolution conflicted too and was resolved again; nothing was lost
    assert raised(outcomes) == []
    assert handler.resolved == 2
    stored = await orders.get("o-1")
    assert (stored.status, stored.note, stored.items) == ("paid", "gift", [{"id": 1}])
    assert stored.version == 4


# ---------------------------------------------------------------- giving up


async def test_conflicts_beyond_max_retries_raise_the_conflict_with_the_attempts() -> None:
    # given: another writer commits during every attempt
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    other = in_memory_mediator(registry_with(MergingUpdateOrderHandler(orders)))

    class AlwaysOvertaken(ReExecutingUpdateOrderHandler):
        max_retries = 2

        async def _handle_internal(self, command: UpdateOrder) -> None:
            self.handled += 1
            order = await self.repo.get(command.order_id)
            await other.send(UpdateOrder(order_id="o-1", changes={"note": f"n{self.handled}"}))
            order.update(command.changes)
            await self.repo.save(order)

    handler = AlwaysOvertaken(orders)
    mediator = in_memory_mediator(registry_with(handler))
    # when
    with pytest.raises(ConcurrencyError) as error:
        await mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
    # then: 1 + max_retries attempts
    assert handler.handled == 3
    attempts = attempts_of(error.value)
    assert [(a.attempt, a.kind, a.error_type) for a in attempts] == [
        (1, "conflict", "ConcurrencyError"),
        (2, "conflict", "ConcurrencyError"),
        (3, "conflict", "ConcurrencyError"),
    ]
    assert (await orders.get("o-1")).status == "pending"


async def test_an_unresolvable_conflict_is_raised_at_once_with_the_attempts() -> None:
    # given: a strategy that refuses to choose between two statuses
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = MergingUpdateOrderHandler(
        orders, strategy=FieldMergeStrategy({"status": "refuse"}), gate=RaceGate()
    )
    mediator = in_memory_mediator(registry_with(handler))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"status": "cancelled"}),
    )
    # then
    (error,) = raised(outcomes)
    assert isinstance(error, UnresolvableConflictError)
    assert error.field_path == "status"
    assert handler.resolved == 1
    assert [(a.attempt, a.error_type, a.delay) for a in attempts_of(error)] == [
        (1, "ConcurrencyError", 0.0),
        (2, "UnresolvableConflictError", None),
    ]
    stored = await orders.get("o-1")
    assert (stored.version, stored.status) == (2, error.existing_value)


async def test_a_conflict_raised_after_the_commit_is_not_retried() -> None:
    # given: a dispatcher raising a conflict once the command committed
    class ConflictingDispatcher:
        async def dispatch(self, events: Sequence[DomainEvent]) -> None:
            raise ConcurrencyError("read-model", expected_version=1, actual_version=2)

    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = MergingUpdateOrderHandler(orders)
    mediator = in_memory_mediator(registry_with(handler), dispatcher=ConflictingDispatcher())
    # when
    with pytest.raises(ConcurrencyError) as error:
        await mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
    # then
    assert phase_of(error.value) is CommandPhase.AFTER_COMMIT
    assert handler.handled == 1
    assert (await orders.get("o-1")).version == 2


async def test_a_handler_without_a_repository_raises_a_typed_error() -> None:
    # given
    class NoRepository(ConflictCommandHandler[UpdateOrder]):
        async def _handle_internal(self, command: UpdateOrder) -> None:
            raise ConcurrencyError(command.order_id, expected_version=1, actual_version=2)

        def resolve_conflict(self, existing: Order, incoming: dict[str, Any]) -> Order:
            return existing

    mediator = in_memory_mediator(registry_with(NoRepository()))
    # when
    with pytest.raises(ConflictHandlerError, match=r"self\.repo") as error:
        await mediator.send(UpdateOrder(order_id="o-1", changes={}))
    # then
    assert (error.value.handler, error.value.stream_id) == ("NoRepository", "o-1")


async def test_resolve_conflict_must_return_the_aggregate_it_was_given() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)

    class Wrong(MergingUpdateOrderHandler):
        def resolve_conflict(self, existing: Order, incoming: dict[str, Any]) -> Order:
            return Order(id="another")

    mediator = in_memory_mediator(registry_with(Wrong(orders, gate=RaceGate())))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"note": "gift"}),
    )
    # then
    (error,) = raised(outcomes)
    assert isinstance(error, ConflictHandlerError)
    assert "'another'" in str(error)


def test_the_behaviour_refuses_a_negative_retry_count() -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        ConflictBehavior(max_retries=-1)


# ---------------------------------------------------------------- context and logs


async def test_the_conflict_context_belongs_to_one_command_and_one_attempt() -> None:
    # given: a behaviour whose first attempt conflicts
    behavior = ConflictBehavior(max_retries=1)
    command, other = (
        UpdateOrder(order_id="o-1", changes={}),
        UpdateOrder(order_id="o-1", changes={}),
    )
    conflict = ConcurrencyError("o-1", expected_version=1, actual_version=2)
    seen: list[tuple[ConflictContext | None, ConflictContext | None]] = []

    async def attempt() -> None:
        seen.append((behavior.conflict_for(command), behavior.conflict_for(other)))
        if len(seen) == 1:
            raise conflict

    # when
    await behavior.handle(command, attempt)
    # then: the second attempt of that command, and only it, saw the conflict
    (first, first_other), (second, second_other) = seen
    assert (first, first_other, second_other) == (None, None, None)
    assert second is not None
    assert (second.command_id, second.conflict, second.attempt) == (command.command_id, conflict, 2)
    assert behavior.conflict_for(command) is None


async def test_each_conflict_and_each_resolution_is_logged_with_stream_and_versions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    mediator = in_memory_mediator(registry_with(MergingUpdateOrderHandler(orders, gate=RaceGate())))
    # when
    with caplog.at_level(logging.INFO, logger="cqrs_ddd_advanced_core.conflict"):
        await race(
            mediator,
            UpdateOrder(order_id="o-1", changes={"status": "paid"}),
            UpdateOrder(order_id="o-1", changes={"note": "gift"}),
        )
    # then
    messages = [r.getMessage() for r in caplog.records if r.name.endswith(".conflict")]
    assert len(messages) == 2
    conflict, resolution = messages
    assert conflict.startswith("concurrency conflict of UpdateOrder")
    assert "at attempt 1: stream 'o-1', expected version 1, actual version 2" in conflict
    assert resolution.startswith("resolved concurrency conflict of UpdateOrder")
    assert "at attempt 2" in resolution


# ---------------------------------------------------------------- event-sourced aggregates


class TicketOpened(DomainEvent):
    title: str


class TicketChanged(DomainEvent):
    changes: dict[str, Any]


class Ticket(EventSourcedAggregateMixin, AggregateRoot):
    title: str = ""
    assignee: str = ""
    priority: int = 0
    estimate: Decimal = Decimal(0)
    due: datetime | None = None

    @classmethod
    def open(cls, ticket_id: str, title: str) -> Ticket:
        ticket = cls(id=ticket_id)
        ticket.trigger_event(TicketOpened(title=title))
        return ticket

    def change(self, changes: dict[str, Any]) -> None:
        self.trigger_event(TicketChanged(changes=changes))

    @aggregate_event_handler
    def _opened(self, event: TicketOpened) -> None:
        self.title = event.title

    @aggregate_event_handler
    def _changed(self, event: TicketChanged) -> None:
        for name, value in event.changes.items():
            setattr(self, name, value)


class ChangeTicket(Command):
    ticket_id: str
    changes: dict[str, Any]


TICKET_EVENTS = EventTypeRegistry([TicketOpened, TicketChanged, ConflictResolved])


class ChangeTicketHandler(ConflictCommandHandler[ChangeTicket]):
    def __init__(self, repo: EventSourcedRepository[Ticket], gate: RaceGate) -> None:
        self.repo = repo
        self.gate = gate

    async def _handle_internal(self, command: ChangeTicket) -> None:
        ticket = await self.repo.get(command.ticket_id)
        await self.gate.wait(command)
        ticket.change(command.changes)
        await self.repo.save(ticket)

    def resolve_conflict(self, existing: Ticket, incoming: dict[str, Any]) -> Ticket:
        return Ticket(**DeepMergeStrategy().merge(existing.model_dump(), incoming))


def test_conflict_resolved_sets_fields_from_its_json_state_in_their_own_types() -> None:
    # given
    ticket = Ticket.open("t-1", "Fix the login")
    merged = Ticket(
        id="t-1",
        title="Fix the login",
        estimate=Decimal("2.50"),
        due=datetime(2024, 6, 3, 12, tzinfo=UTC),
    )
    # when
    ticket.trigger_event(ConflictResolved.of(merged, {"estimate": Decimal("2.50")}))
    # then
    assert ticket.estimate == Decimal("2.50")
    assert ticket.due == datetime(2024, 6, 3, 12, tzinfo=UTC)
    assert (ticket.id, ticket.version) == ("t-1", 2)
    assert ticket.pending_events[-1].changes == {"estimate": "2.50"}  # type: ignore[attr-defined]


async def test_a_resolved_conflict_replays_to_the_merged_state_for_an_event_sourced_aggregate() -> (
    None
):
    # given: an event-sourced ticket, and two commands racing on it
    store = InMemoryEventStore()
    repository = EventSourcedRepository(EventSourcedLoader(Ticket, store, TICKET_EVENTS))
    registry = HandlerRegistry()
    registry.register_command_handler(ChangeTicket, ChangeTicketHandler(repository, RaceGate()))
    mediator = EventSourcedMediator(
        registry=registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=store
        ),
    )
    await store.append(
        "t-1", Ticket.open("t-1", "Fix the login").collect_events(), expected_version=0
    )
    # when
    outcomes = await race(
        mediator,
        ChangeTicket(ticket_id="t-1", changes={"assignee": "ada"}),
        ChangeTicket(ticket_id="t-1", changes={"priority": 2}),
    )
    # then: the stream ends with the resolution, and replaying it gives both changes
    assert raised(outcomes) == []
    stream = await store.load_stream("t-1")
    assert [e.event_type for e in stream] == ["TicketOpened", "TicketChanged", "ConflictResolved"]
    assert [e.version for e in stream] == [1, 2, 3]
    replayed = await EventSourcedRepository(EventSourcedLoader(Ticket, store, TICKET_EVENTS)).get(
        "t-1"
    )
    assert (replayed.title, replayed.assignee, replayed.priority) == ("Fix the login", "ada", 2)
    assert replayed.version == 3
