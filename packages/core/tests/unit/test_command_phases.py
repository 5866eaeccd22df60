"""Every error leaving a command says in which phase it was raised: handle, commit, after."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from core_test_model import AddItem, Order, PlaceOrder, PlaceOrderHandler

from cqrs_ddd_core import (
    Command,
    ConcurrencyError,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
)
from cqrs_ddd_core.cqrs import CommandPhase, mark_phase, phase_of
from cqrs_ddd_core.exceptions import EventDispatchError


class CommitFailsUnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work whose commit raises (a lost connection, say)."""

    async def commit(self) -> None:
        raise ConnectionResetError("connection lost during COMMIT")


def build_mediator(
    orders: InMemoryRepository[Order],
    *,
    uow_factory: type[InMemoryUnitOfWork] = InMemoryUnitOfWork,
    dispatcher: EventDispatcher | None = None,
) -> Mediator:
    registry = HandlerRegistry()
    registry.register_command_handler(PlaceOrder, PlaceOrderHandler(orders))

    @registry.command_handler(AddItem)
    async def add_item(command: AddItem) -> None:
        order = await orders.get(command.order_id)
        order.add_item(command.sku, command.price)
        await orders.save(order)

    return Mediator(registry=registry, uow_factory=uow_factory, event_dispatcher=dispatcher)


def test_an_error_no_mediator_tagged_reads_as_raised_while_handling() -> None:
    assert phase_of(RuntimeError("boom")) is CommandPhase.HANDLE
    assert f"{CommandPhase.AFTER_COMMIT}" == "after_commit"


async def test_an_error_of_the_handler_is_tagged_handle() -> None:
    # given
    orders = InMemoryRepository(Order)
    mediator = build_mediator(orders)
    # when
    with pytest.raises(Exception, match="no-such-order") as raised:
        await mediator.send(AddItem(order_id="no-such-order", sku="a", price=Decimal(1)))
    # then
    assert phase_of(raised.value) is CommandPhase.HANDLE
    assert not getattr(raised.value, "__notes__", [])


async def test_an_error_of_the_commit_is_tagged_commit_and_keeps_its_type() -> None:
    # given
    mediator = build_mediator(InMemoryRepository(Order), uow_factory=CommitFailsUnitOfWork)
    command = PlaceOrder(customer_id="c-1")
    # when
    with pytest.raises(ConnectionResetError) as raised:
        await mediator.send(command)
    # then
    assert phase_of(raised.value) is CommandPhase.COMMIT
    assert any(
        "outcome is unknown" in note and str(command.command_id) in note
        for note in raised.value.__notes__
    )


async def test_a_conflict_found_at_commit_is_tagged_commit() -> None:
    # given: two commands that both load one order before either commits
    orders = InMemoryRepository(Order)
    mediator = build_mediator(orders)
    await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    both_loaded = asyncio.Barrier(2)
    registry = HandlerRegistry()

    @registry.command_handler(AddItem)
    async def add_item(command: AddItem) -> None:
        order = await orders.get(command.order_id)
        await both_loaded.wait()
        order.add_item(command.sku, command.price)
        await orders.save(order)

    racing = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when: the in-memory unit of work checks versions when it commits
    outcomes = await asyncio.gather(
        racing.send(AddItem(order_id="o-1", sku="a", price=Decimal(1))),
        racing.send(AddItem(order_id="o-1", sku="b", price=Decimal(2))),
        return_exceptions=True,
    )
    # then
    (conflict,) = [outcome for outcome in outcomes if isinstance(outcome, ConcurrencyError)]
    assert phase_of(conflict) is CommandPhase.COMMIT


async def test_an_error_of_event_dispatch_is_tagged_after_commit_and_the_command_is_stored() -> (
    None
):
    # given
    dispatcher = EventDispatcher(on_error="raise")

    async def fail(event: DomainEvent) -> None:
        raise RuntimeError("the mailer is down")

    dispatcher.subscribe(DomainEvent, fail)
    orders = InMemoryRepository(Order)
    mediator = build_mediator(orders, dispatcher=dispatcher)
    # when
    with pytest.raises(EventDispatchError) as raised:
        await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    # then
    assert phase_of(raised.value) is CommandPhase.AFTER_COMMIT
    assert any("do not send it again" in note for note in raised.value.__notes__)
    assert (await orders.get("o-1")).customer_id == "c-1"


async def test_the_outer_command_s_phase_wins_for_an_error_of_a_nested_command() -> None:
    # given: a handler that sends another command, whose dispatch fails after its commit
    dispatcher = EventDispatcher(on_error="raise")

    async def fail(event: DomainEvent) -> None:
        raise RuntimeError("the mailer is down")

    dispatcher.subscribe(DomainEvent, fail)
    orders = InMemoryRepository(Order)
    inner = build_mediator(orders, dispatcher=dispatcher)

    class PlaceTwo(Command):
        pass

    registry = HandlerRegistry()

    @registry.command_handler(PlaceTwo)
    async def place_two(command: PlaceTwo) -> None:
        await inner.send(PlaceOrder(customer_id="c-1"))

    outer = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    with pytest.raises(EventDispatchError) as raised:
        await outer.send(PlaceTwo())
    # then: the outer command itself failed while handling
    assert phase_of(raised.value) is CommandPhase.HANDLE


def test_marking_again_replaces_the_phase() -> None:
    # given
    error = RuntimeError("boom")
    mark_phase(error, CommandPhase.AFTER_COMMIT)
    # when
    mark_phase(error, CommandPhase.HANDLE)
    # then
    assert phase_of(error) is CommandPhase.HANDLE
