from __future__ import annotations

from decimal import Decimal

import pytest
from core_test_model import Order

from cqrs_ddd_core import (
    AggregateNotFoundError,
    ConcurrencyError,
    FieldSpecification,
    InMemoryMessagePublisher,
    InMemoryRepository,
    InMemoryUnitOfWork,
    command_scope,
)
from cqrs_ddd_core.exceptions import UnitOfWorkError


async def test_a_save_becomes_visible_only_when_the_unit_of_work_commits(
    orders: InMemoryRepository[Order],
) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
        assert await orders.find("o-1") is None
        await uow.commit()
    assert (await orders.get("o-1")).customer_id == "c-1"


async def test_leaving_the_unit_of_work_without_commit_discards_the_save(
    orders: InMemoryRepository[Order],
) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
    assert await orders.find("o-1") is None


async def test_an_explicit_rollback_discards_the_save(orders: InMemoryRepository[Order]) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
        await uow.rollback()
        await uow.commit()
    assert await orders.find("o-1") is None


async def test_a_unit_of_work_cannot_be_entered_twice_at_once() -> None:
    uow = InMemoryUnitOfWork()
    async with uow:
        with pytest.raises(UnitOfWorkError, match="already in use"):
            await uow.__aenter__()


async def test_changing_a_loaded_aggregate_without_saving_changes_nothing(
    orders: InMemoryRepository[Order],
) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
        await uow.commit()
    loaded = await orders.get("o-1")
    loaded.add_item("sku", Decimal(1))
    assert (await orders.get("o-1")).items == {}


async def test_an_aggregate_saved_twice_in_one_command_is_checked_against_its_loaded_version(
    orders: InMemoryRepository[Order],
) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow) as scope:
            order = Order.place("c-1", "o-1")
            await orders.save(order)
            order.add_item("sku", Decimal(1))
            await orders.save(order)
            assert [e.version for e in scope.take_events()] == [1, 2]
        await uow.commit()
    assert (await orders.get("o-1")).version == 2


async def test_a_missing_aggregate_raises_the_typed_error(
    orders: InMemoryRepository[Order],
) -> None:
    with pytest.raises(AggregateNotFoundError, match="Order 'nope' not found"):
        await orders.get("nope")


async def test_the_repository_lists_aggregates_meeting_a_specification(
    orders: InMemoryRepository[Order],
) -> None:
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            for order_id, customer in [("o-1", "ann"), ("o-2", "bob"), ("o-3", "ann")]:
                await orders.save(Order.place(customer, order_id))
        await uow.commit()
    found = await orders.list(FieldSpecification("customer_id", "==", "ann"))
    assert sorted(order.id for order in found) == ["o-1", "o-3"]
    assert len(await orders.list()) == 3


async def test_the_in_memory_publisher_keeps_a_message_id_once() -> None:
    publisher = InMemoryMessagePublisher()
    await publisher.publish("orders", {"n": 1}, message_id="m-1")
    await publisher.publish("orders", {"n": 1}, message_id="m-1")
    await publisher.publish("payments", {"n": 2}, message_id="m-2")
    assert [m.message_id for m in publisher.on_topic("orders")] == ["m-1"]
    assert len(publisher.messages) == 2


async def test_a_save_that_records_no_event_still_advances_the_version(
    orders: InMemoryRepository[Order],
) -> None:
    # given
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
        await uow.commit()
    loaded = await orders.get("o-1")
    # when: a change that records no event
    loaded.customer_id = "c-2"
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow) as scope:
            await orders.save(loaded)
            assert scope.take_events() == []
        await uow.commit()
    # then
    stored = await orders.get("o-1")
    assert (stored.customer_id, stored.version, loaded.version) == ("c-2", 2, 2)


async def test_two_commands_changing_one_aggregate_without_events_cannot_both_win(
    orders: InMemoryRepository[Order],
) -> None:
    # given: one order, loaded by two commands before either saves
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(Order.place("c-1", "o-1"))
        await uow.commit()
    first, second = await orders.get("o-1"), await orders.get("o-1")
    first.customer_id, second.customer_id = "first", "second"
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(first)
        await uow.commit()
    # when
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await orders.save(second)
        with pytest.raises(ConcurrencyError) as raised:
            await uow.commit()
    # then: the first change is kept, and the error says why
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    assert (await orders.get("o-1")).customer_id == "first"


async def test_the_repository_records_its_events_in_the_command_as_stored(
    orders: InMemoryRepository[Order],
) -> None:
    # given: a command's scope
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow, correlation_id="corr-1", causation_id="cmd-1") as scope:
            # when
            await orders.save(Order.place("c-1", "o-1"))
            # then: a state-stored aggregate's events are the repository's to keep
            [placed] = scope.take_events()
            assert scope.is_stored(placed)
            assert (placed.correlation_id, placed.causation_id) == ("corr-1", "cmd-1")


async def test_events_recorded_without_the_stored_mark_are_not_stored() -> None:
    # given
    order = Order.place("c-1", "o-1")
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow) as scope:
            # when
            [recorded] = scope.record(order.collect_events())
            # then
            assert not scope.is_stored(recorded)
            assert scope.take_events() == [recorded]
