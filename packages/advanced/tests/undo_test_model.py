"""The spec's ``AddItemToOrder`` with undo, and the checks each backend must pass.

``Cart`` wires an event-sourced order (lines added and removed), its
handlers, an ``EventSourcedMediatorFactory`` mediator and an ``UndoService``
over whatever event store, unit of work and undo log a backend gives. Adding
an item records ``ItemAddedToOrder`` with a line id derived from the
command's id; its executor reverses it with ``RemoveOrderLine`` of that line,
and says the undo still applies after other lines were added or a note was
written (another writer), but not after the line itself was removed.
The ``check_*`` functions are the scenarios, run in memory and on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from uuid import uuid5

import pytest

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_advanced_core.undo import (
    AlreadyUndoneError,
    ForeignUndoTokenError,
    LoggedEvent,
    NotUndoneError,
    NoUndoExecutorError,
    UndoConflictError,
    UndoExecutorRegistry,
    UndoFailedError,
    UndoLog,
    UndoService,
    UnknownUndoTokenError,
    executor,
)
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
    MessageTypeRegistry,
)
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork


class ItemAddedToOrder(DomainEvent):
    line_id: str
    item: str
    price: Decimal


class OrderLineRemoved(DomainEvent):
    line_id: str


class OrderNoted(DomainEvent):
    note: str


class Order(EventSourcedAggregateMixin, AggregateRoot):
    """An order whose lines can be added and removed; notes are another writer's business."""

    id: str
    lines: dict[str, tuple[str, Decimal]] = {}
    notes: tuple[str, ...] = ()

    @aggregate_event_handler
    def on_added(self, event: ItemAddedToOrder) -> None:
        self.lines = {**self.lines, event.line_id: (event.item, event.price)}

    @aggregate_event_handler
    def on_removed(self, event: OrderLineRemoved) -> None:
        self.lines = {key: line for key, line in self.lines.items() if key != event.line_id}

    @aggregate_event_handler
    def on_noted(self, event: OrderNoted) -> None:
        self.notes = (*self.notes, event.note)

    @property
    def items(self) -> list[str]:
        return sorted(item for item, _ in self.lines.values())


class CreditGranted(DomainEvent):
    amount: Decimal


class CreditReversed(DomainEvent):
    account_id: str


class Account(EventSourcedAggregateMixin, AggregateRoot):
    id: str
    credit: Decimal = Decimal(0)

    @aggregate_event_handler
    def on_granted(self, event: CreditGranted) -> None:
        self.credit += event.amount


class Reversal(EventSourcedAggregateMixin, AggregateRoot):
    """A reversal of credit, a new aggregate each time: its inverse never meets another."""

    id: str

    @aggregate_event_handler
    def on_reversed(self, event: CreditReversed) -> None:
        pass


class GrantCredit(Command):
    account_id: str
    amount: Decimal


class ReverseCredit(Command):
    account_id: str


class AddItemToOrder(Command):
    order_id: str
    item: str
    price: Decimal


class RemoveOrderLine(Command):
    order_id: str
    line_id: str


class NoteOrder(Command):
    order_id: str
    note: str


class BreakingCommand(Command):
    """A command no executor knows."""

    order_id: str


class LineGone(Exception):  # noqa: N818 - the domain's refusal
    """The line to remove is not on the order."""


def inverse_of_adding(command: AddItemToOrder, events: Sequence[DomainEvent]) -> Command:
    (added,) = [event for event in events if isinstance(event, ItemAddedToOrder)]
    return RemoveOrderLine(order_id=command.order_id, line_id=added.line_id)


def commutes_with_adding(command: AddItemToOrder, intervening: Sequence[LoggedEvent]) -> bool:
    """Other lines and notes leave this line alone; a removal may be of this very line."""
    return all(event.event_type in ("ItemAddedToOrder", "OrderNoted") for event in intervening)


class Cart:
    """The order's handlers, a mediator and an undo service on one backend."""

    def __init__(
        self,
        event_store: EventStore,
        uow_factory: Callable[[], UnitOfWork],
        log: UndoLog,
        *,
        per_user: bool = False,
    ) -> None:
        self.event_store = event_store
        self.remove_fails = False
        registry = HandlerRegistry()
        loader = EventSourcedLoader(
            Order, event_store, EventTypeRegistry([ItemAddedToOrder, OrderLineRemoved, OrderNoted])
        )
        self.orders = EventSourcedRepository(loader)

        async def order_of(order_id: str) -> Order:
            return await self.orders.find(order_id) or Order(id=order_id)

        @registry.command_handler(AddItemToOrder)
        async def add(command: AddItemToOrder) -> None:
            order = await order_of(command.order_id)
            line = str(uuid5(command.command_id, "line"))
            order.trigger_event(
                ItemAddedToOrder(line_id=line, item=command.item, price=command.price)
            )
            await self.orders.save(order)

        @registry.command_handler(RemoveOrderLine)
        async def remove(command: RemoveOrderLine) -> None:
            order = await order_of(command.order_id)
            if command.line_id not in order.lines:
                raise LineGone(f"order {command.order_id} has no line {command.line_id}")
            order.trigger_event(OrderLineRemoved(line_id=command.line_id))
            await self.orders.save(order)
            if self.remove_fails:
                raise ConnectionError("the warehouse hung up")

        @registry.command_handler(NoteOrder)
        async def note(command: NoteOrder) -> None:
            order = await order_of(command.order_id)
            order.trigger_event(OrderNoted(note=command.note))
            await self.orders.save(order)

        @registry.command_handler(BreakingCommand)
        async def breaking(command: BreakingCommand) -> None:
            raise AssertionError("never run: it has no undo executor")

        accounts = EventSourcedRepository(
            EventSourcedLoader(Account, event_store, EventTypeRegistry([CreditGranted]))
        )
        reversals = EventSourcedRepository(
            EventSourcedLoader(Reversal, event_store, EventTypeRegistry([CreditReversed]))
        )
        self.reversal_pause = 0.0

        @registry.command_handler(GrantCredit)
        async def grant(command: GrantCredit) -> None:
            account = await accounts.find(command.account_id) or Account(id=command.account_id)
            account.trigger_event(CreditGranted(amount=command.amount))
            await accounts.save(account)

        @registry.command_handler(ReverseCredit)
        async def reverse(command: ReverseCredit) -> None:
            reversal = Reversal(id=f"reversal-{command.command_id}")
            reversal.trigger_event(CreditReversed(account_id=command.account_id))
            await reversals.save(reversal)
            await asyncio.sleep(self.reversal_pause)  # both undos in flight at once

        self.mediator = EventSourcedMediatorFactory(
            event_store=event_store, uow_factory=uow_factory, handler_registry=registry
        ).create()
        executors = UndoExecutorRegistry()
        executors.register(
            AddItemToOrder, executor(inverse_of_adding, commutes=commutes_with_adding)
        )
        executors.register(
            GrantCredit, executor(lambda c, _: ReverseCredit(account_id=c.account_id))
        )
        self.log = log
        self.undo_service = UndoService(
            self.mediator,
            executors,
            log,
            event_store=event_store,
            message_registry=MessageTypeRegistry(
                [
                    AddItemToOrder,
                    RemoveOrderLine,
                    NoteOrder,
                    BreakingCommand,
                    GrantCredit,
                    ReverseCredit,
                ]
            ),
            per_user=per_user,
        )

    async def items(self, order_id: str) -> list[str]:
        order = await self.orders.find(order_id)
        return [] if order is None else order.items


def add(item: str, price: str = "50.00", order_id: str = "order_123") -> AddItemToOrder:
    return AddItemToOrder(order_id=order_id, item=item, price=Decimal(price))


# -- the scenarios ----------------------------------------------------------------------------


async def check_the_spec_example(cart: Cart) -> None:
    """``execute`` → ``undo`` → ``redo`` of the spec's ``AddItemToOrder``."""
    undo_service = cart.undo_service
    undo_token = await undo_service.execute(
        AddItemToOrder(order_id="order_123", item="Widget", price=Decimal("50.00"))
    )
    assert await cart.items("order_123") == ["Widget"]

    await undo_service.undo(undo_token)
    assert await cart.items("order_123") == []

    await undo_service.redo(undo_token)
    assert await cart.items("order_123") == ["Widget"]

    await undo_service.undo(undo_token)  # the redo is undone in turn
    assert await cart.items("order_123") == []
    history = [stored.event_type for stored in await cart.event_store.load_stream("order_123")]
    assert history == [  # nothing rewritten: each step appended
        "ItemAddedToOrder",
        "OrderLineRemoved",
        "ItemAddedToOrder",
        "OrderLineRemoved",
    ]


async def check_a_token_undoes_only_its_own_command(cart: Cart) -> None:
    first = await cart.undo_service.execute(add("Widget"))
    await cart.undo_service.execute(add("Gadget"))
    await cart.undo_service.execute(add("Widget", order_id="order_9"))

    await cart.undo_service.undo(first)

    assert await cart.items("order_123") == ["Gadget"]
    assert await cart.items("order_9") == ["Widget"]


async def check_the_rules(cart: Cart) -> None:
    token = await cart.undo_service.execute(add("Widget"))
    with pytest.raises(NotUndoneError, match="it was not undone"):
        await cart.undo_service.redo(token)
    await cart.undo_service.undo(token)
    with pytest.raises(AlreadyUndoneError, match=f"{token}: the command is undone"):
        await cart.undo_service.undo(token)

    # a new command on the order empties its redo stack
    await cart.undo_service.execute(add("Gadget"))
    with pytest.raises(NotUndoneError, match="superseded"):
        await cart.undo_service.redo(token)
    assert await cart.items("order_123") == ["Gadget"]


async def check_another_writer_commutes_or_conflicts(cart: Cart) -> None:
    token = await cart.undo_service.execute(add("Widget"))
    await cart.mediator.send(NoteOrder(order_id="order_123", note="gift wrap"))  # another writer
    await cart.undo_service.undo(token)  # a note leaves the line alone: it commutes
    assert await cart.items("order_123") == []

    other = await cart.undo_service.execute(add("Gadget"))
    (entry,) = [
        e for e in await cart.undo_service.history(aggregate_id="order_123") if e.token == other
    ]
    line = entry.events[0].payload["line_id"]
    await cart.mediator.send(RemoveOrderLine(order_id="order_123", line_id=line))  # someone else
    with pytest.raises(UndoConflictError, match=r"order_123 v\d+ OrderLineRemoved") as refused:
        await cart.undo_service.undo(other)
    assert [name for _, _, name in refused.value.intervening] == ["OrderLineRemoved"]
    assert (await cart.log.get(other)).status == "done"  # type: ignore[union-attr]


async def check_an_undo_retried_with_its_operation_id_takes_effect_once(cart: Cart) -> None:
    from uuid import uuid4

    token = await cart.undo_service.execute(add("Widget"))
    operation = uuid4()
    await cart.undo_service.undo(token, operation_id=operation)
    await cart.undo_service.undo(token, operation_id=operation)  # the client's retry

    assert await cart.items("order_123") == []
    removals = [
        stored.event_type
        for stored in await cart.event_store.load_stream("order_123")
        if stored.event_type == "OrderLineRemoved"
    ]
    assert removals == ["OrderLineRemoved"]


async def check_a_failing_undo_applies_nothing(cart: Cart) -> None:
    token = await cart.undo_service.execute(add("Widget"))
    cart.remove_fails = True

    with pytest.raises(UndoFailedError, match="ConnectionError: the warehouse hung up"):
        await cart.undo_service.undo(token)

    assert await cart.items("order_123") == ["Widget"]
    entry = await cart.log.get(token)
    assert entry is not None
    assert (entry.status, entry.version) == ("done", 1)
    cart.remove_fails = False
    await cart.undo_service.undo(token)
    assert await cart.items("order_123") == []


async def check_bad_input_is_refused_naming_it(cart: Cart) -> None:
    from uuid import uuid4

    unknown = uuid4()
    with pytest.raises(UnknownUndoTokenError, match=str(unknown)):
        await cart.undo_service.undo(unknown)
    with pytest.raises(NoUndoExecutorError, match="BreakingCommand has no undo executor"):
        await cart.undo_service.execute(BreakingCommand(order_id="order_123"))
    assert await cart.undo_service.history() == []


async def check_stacks_per_user(cart: Cart) -> None:
    """``cart`` was built with ``per_user=True``."""
    alice = await cart.undo_service.execute(add("Widget"), user="alice")
    await cart.undo_service.execute(add("Gadget"), user="bob")

    with pytest.raises(ForeignUndoTokenError, match=r"belongs to 'alice'.*not to 'bob'"):
        await cart.undo_service.undo(alice, user="bob")
    assert await cart.items("order_123") == ["Gadget", "Widget"]
    assert [entry.user for entry in await cart.undo_service.history(user="bob")] == ["bob"]

    assert await cart.undo_service.undo_last(aggregate_id="order_123", user="alice") == alice
    assert await cart.items("order_123") == ["Gadget"]


async def check_undoing_newest_first_goes_all_the_way_down(cart: Cart) -> None:
    """Entries undone newest first cancel out: no conflict on the way down, and back up."""
    tokens = [await cart.undo_service.execute(add(item)) for item in ("Widget", "Gadget", "Gizmo")]
    for token in reversed(tokens):
        await cart.undo_service.undo(token)
    assert await cart.items("order_123") == []
    for token in tokens:
        await cart.undo_service.redo(token)
    assert await cart.items("order_123") == ["Gadget", "Gizmo", "Widget"]
    assert await cart.undo_service.undo_last(aggregate_id="order_123") == tokens[-1]
    assert await cart.items("order_123") == ["Gadget", "Widget"]


async def check_undo_last_retried_with_its_operation_id_undoes_once(cart: Cart) -> None:
    """A retried ``undo_last`` (same operation id) answers the first token and undoes no more."""
    from uuid import uuid4

    tokens = [await cart.undo_service.execute(add(item)) for item in ("Widget", "Gadget")]
    operation = uuid4()
    first = await cart.undo_service.undo_last(aggregate_id="order_123", operation_id=operation)
    again = await cart.undo_service.undo_last(aggregate_id="order_123", operation_id=operation)
    assert first == again == tokens[-1]
    assert await cart.items("order_123") == ["Widget"]


async def check_an_operation_id_belongs_to_one_token_and_action(cart: Cart) -> None:
    from uuid import uuid4

    first = await cart.undo_service.execute(add("Widget"))
    second = await cart.undo_service.execute(add("Gadget"))
    operation = uuid4()
    await cart.undo_service.undo(second, operation_id=operation)
    await cart.undo_service.undo(first, operation_id=operation)  # another token: it applies
    assert await cart.items("order_123") == []
    await cart.undo_service.redo(first, operation_id=operation)  # another action: it applies
    await cart.undo_service.redo(second, operation_id=operation)
    assert await cart.items("order_123") == ["Gadget", "Widget"]


async def check_the_log_alone_lets_one_of_two_simultaneous_undos_through(cart: Cart) -> None:
    """Each undo's inverse writes a new stream: only the log's version check stops a second."""
    cart.reversal_pause = 0.02
    token = await cart.undo_service.execute(GrantCredit(account_id="acc-1", amount=Decimal(10)))
    outcomes = await asyncio.gather(
        cart.undo_service.undo(token), cart.undo_service.undo(token), return_exceptions=True
    )
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert len(failures) == 1, outcomes
    assert type(failures[0]).__name__ == "ConcurrencyError", outcomes
    reversals = [
        event for event in await cart.event_store.read_all() if event.event_type == "CreditReversed"
    ]
    assert len(reversals) == 1
