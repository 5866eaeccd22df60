from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from core_test_model import (
    AddItem,
    GetOrder,
    ItemAdded,
    Order,
    OrderPlaced,
    PlaceOrder,
    RecordingDispatcher,
)

from cqrs_ddd_core import (
    Command,
    CommandResponse,
    ConcurrencyError,
    HandlerNotFoundError,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
    NoActiveUnitOfWorkError,
    Query,
    current_uow,
)
from cqrs_ddd_core.cqrs.scope import CommandScope, joining_commands
from cqrs_ddd_core.exceptions import HandlerAlreadyRegisteredError


class Unhandled(Command):
    pass


class UnhandledQuery(Query):
    pass


async def test_a_command_reaches_its_handler_and_returns_its_result(
    mediator: Mediator, orders: InMemoryRepository[Order]
) -> None:
    # when
    response = await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    # then
    assert response.result == "o-1"
    assert (await orders.get("o-1")).customer_id == "c-1"


async def test_a_query_reaches_its_handler(mediator: Mediator) -> None:
    # given
    await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    # when
    order = await mediator.query(GetOrder(order_id="o-1"))
    # then
    assert isinstance(order, Order)
    assert order.customer_id == "c-1"


async def test_a_command_without_a_handler_raises_the_typed_error(mediator: Mediator) -> None:
    with pytest.raises(HandlerNotFoundError) as raised:
        await mediator.send(Unhandled())
    assert raised.value.message_type is Unhandled
    assert "Unhandled" in str(raised.value)


async def test_a_query_without_a_handler_raises_the_typed_error(mediator: Mediator) -> None:
    with pytest.raises(HandlerNotFoundError, match="UnhandledQuery"):
        await mediator.query(UnhandledQuery())


def test_registering_a_second_handler_for_a_command_type_is_refused() -> None:
    registry = HandlerRegistry()

    async def first(command: PlaceOrder) -> None:
        return None

    registry.register_command_handler(PlaceOrder, first)
    with pytest.raises(HandlerAlreadyRegisteredError, match="PlaceOrder"):
        registry.register_command_handler(PlaceOrder, first)


async def test_a_command_subclass_falls_back_to_its_base_class_handler(mediator: Mediator) -> None:
    class PlaceRushOrder(PlaceOrder):
        pass

    response = await mediator.send(PlaceRushOrder(customer_id="c-9", order_id="o-9"))
    assert response.result == "o-9"


async def test_the_decorator_form_registers_a_command_handler() -> None:
    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> str:
        return f"placed for {command.customer_id}"

    mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    assert (await mediator.send(PlaceOrder(customer_id="c-2"))).result == "placed for c-2"


async def test_events_reach_the_dispatcher_after_commit_stamped_with_the_command_ids(
    mediator: Mediator, dispatcher: RecordingDispatcher
) -> None:
    # given
    command = PlaceOrder(customer_id="c-1", order_id="o-1")
    # when
    response = await mediator.send(command)
    # then
    assert [type(event) for event in dispatcher.received] == [OrderPlaced]
    event = dispatcher.received[0]
    assert event.aggregate_id == "o-1"
    assert event.aggregate_type == "Order"
    assert event.version == 1
    assert event.causation_id == str(command.command_id)
    assert event.correlation_id == str(command.command_id)
    assert list(response.events) == dispatcher.received


async def test_a_given_correlation_id_is_carried_by_the_events(
    mediator: Mediator, dispatcher: RecordingDispatcher
) -> None:
    await mediator.send(PlaceOrder(customer_id="c-1", correlation_id="checkout-42"))
    assert dispatcher.received[0].correlation_id == "checkout-42"


async def test_each_event_is_dispatched_once_across_commands(
    mediator: Mediator, dispatcher: RecordingDispatcher
) -> None:
    # when
    await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    await mediator.send(AddItem(order_id="o-1", sku="sku-1", price=Decimal("9.99")))
    await mediator.send(AddItem(order_id="o-1", sku="sku-2", price=Decimal("5.00")))
    # then
    assert [type(e) for e in dispatcher.received] == [OrderPlaced, ItemAdded, ItemAdded]
    assert [e.version for e in dispatcher.received] == [1, 2, 3]
    assert len({e.event_id for e in dispatcher.received}) == 3


async def test_events_are_not_dispatched_before_the_commit(
    orders: InMemoryRepository[Order], dispatcher: RecordingDispatcher
) -> None:
    # given: a unit of work that records what the dispatcher had seen when it committed
    seen_at_commit: list[int] = []

    class ObservedUnitOfWork(InMemoryUnitOfWork):
        async def commit(self) -> None:
            seen_at_commit.append(len(dispatcher.received))
            await super().commit()

    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> None:
        await orders.save(Order.place(command.customer_id))

    mediator = Mediator(
        registry=registry, uow_factory=ObservedUnitOfWork, event_dispatcher=dispatcher
    )
    # when
    await mediator.send(PlaceOrder(customer_id="c-1"))
    # then
    assert seen_at_commit == [0]
    assert len(dispatcher.received) == 1


async def test_a_failing_handler_commits_nothing_and_dispatches_nothing(
    orders: InMemoryRepository[Order], dispatcher: RecordingDispatcher
) -> None:
    # given: a handler that saves an order, then fails
    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place_then_fail(command: PlaceOrder) -> None:
        await orders.save(Order.place(command.customer_id, command.order_id))
        raise RuntimeError("payment gateway down")

    mediator = Mediator(
        registry=registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher
    )
    # when
    with pytest.raises(RuntimeError, match="payment gateway down"):
        await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    # then
    assert await orders.find("o-1") is None
    assert dispatcher.received == []


async def test_a_failed_commit_dispatches_nothing_and_changes_nothing(
    mediator: Mediator, orders: InMemoryRepository[Order], dispatcher: RecordingDispatcher
) -> None:
    # given: an order, loaded by a command that another command overtakes
    await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    dispatcher.received.clear()
    stale = await orders.get("o-1")
    await mediator.send(AddItem(order_id="o-1", sku="fresh", price=Decimal(1)))
    registry = HandlerRegistry()

    @registry.command_handler(AddItem)
    async def add_to_stale_copy(command: AddItem) -> None:
        stale.add_item(command.sku, command.price)
        await orders.save(stale)

    late = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher)
    # when
    with pytest.raises(ConcurrencyError) as raised:
        await late.send(AddItem(order_id="o-1", sku="stale", price=Decimal(2)))
    # then
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    assert raised.value.stream_id == "o-1"
    assert list((await orders.get("o-1")).items) == ["fresh"]
    assert [e.sku for e in dispatcher.received if isinstance(e, ItemAdded)] == ["fresh"]


async def test_two_racing_commands_on_one_aggregate_have_exactly_one_winner(
    mediator: Mediator, orders: InMemoryRepository[Order]
) -> None:
    # given: two handlers that both load the order, then yield to each other before saving
    await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    both_loaded = asyncio.Barrier(2)
    registry = HandlerRegistry()

    @registry.command_handler(AddItem)
    async def add_after_the_other_loaded(command: AddItem) -> None:
        order = await orders.get(command.order_id)
        await both_loaded.wait()
        order.add_item(command.sku, command.price)
        await orders.save(order)

    racing = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    outcomes = await asyncio.gather(
        racing.send(AddItem(order_id="o-1", sku="a", price=Decimal(1))),
        racing.send(AddItem(order_id="o-1", sku="b", price=Decimal(2))),
        return_exceptions=True,
    )
    # then
    assert sum(isinstance(o, CommandResponse) for o in outcomes) == 1
    assert sum(isinstance(o, ConcurrencyError) for o in outcomes) == 1
    stored = await orders.get("o-1")
    assert stored.version == 2
    assert len(stored.items) == 1


async def test_a_handler_may_return_its_own_events_in_a_command_response(
    dispatcher: RecordingDispatcher,
) -> None:
    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> CommandResponse[str]:
        order = Order.place(command.customer_id)
        return CommandResponse(result=order.id, events=order.collect_events())

    mediator = Mediator(
        registry=registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher
    )
    command = PlaceOrder(customer_id="c-1")
    response = await mediator.send(command)
    assert response.result == dispatcher.received[0].aggregate_id
    assert dispatcher.received[0].causation_id == str(command.command_id)


async def test_the_unit_of_work_is_ambient_inside_a_command_and_absent_outside() -> None:
    registry = HandlerRegistry()
    seen: list[Any] = []

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> None:
        seen.append(current_uow())

    await Mediator(registry=registry, uow_factory=InMemoryUnitOfWork).send(
        PlaceOrder(customer_id="c")
    )
    assert isinstance(seen[0], InMemoryUnitOfWork)
    with pytest.raises(NoActiveUnitOfWorkError):
        current_uow()


async def test_concurrent_commands_each_see_their_own_unit_of_work() -> None:
    registry = HandlerRegistry()
    seen: dict[str, Any] = {}
    both_inside = asyncio.Barrier(2)

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> None:
        await both_inside.wait()
        seen[command.customer_id] = current_uow()

    mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    await asyncio.gather(
        mediator.send(PlaceOrder(customer_id="a")), mediator.send(PlaceOrder(customer_id="b"))
    )
    assert seen["a"] is not seen["b"]


async def test_work_joined_to_a_command_commits_with_it_and_not_with_nested_commands() -> None:
    """``joining_commands``: the top-level command's scope runs the joined work before commit."""

    class Outer(Command):
        fail: bool = False

    class Inner(Command):
        pass

    registry = HandlerRegistry()
    order: list[str] = []
    uows: list[InMemoryUnitOfWork] = []

    def factory() -> InMemoryUnitOfWork:
        uows.append(InMemoryUnitOfWork())
        return uows[-1]

    mediator = Mediator(registry=registry, uow_factory=factory)

    @registry.command_handler(Outer)
    async def outer(command: Outer) -> None:
        order.append("outer")
        await mediator.send(Inner())
        if command.fail:
            raise RuntimeError("outer fails")

    @registry.command_handler(Inner)
    async def inner(command: Inner) -> None:
        order.append("inner")

    def join(scope: CommandScope) -> None:
        async def before_commit() -> None:
            order.append(f"joined into uow {uows.index(scope.uow)}")  # type: ignore[arg-type]

        scope.before_commit(before_commit)

    with joining_commands(join):
        await mediator.send(Outer())
        with pytest.raises(RuntimeError):
            await mediator.send(Outer(fail=True))
    await mediator.send(Outer())  # outside the block: nothing joins

    assert order == [
        "outer",
        "inner",
        "joined into uow 0",
        "outer",
        "inner",
        "outer",
        "inner",
    ]
