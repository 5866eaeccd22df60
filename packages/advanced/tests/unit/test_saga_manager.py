"""Sagas end to end in memory: the spec's OrderFulfillment wired by bootstrap_sagas to a mediator.

Every command handler here remembers the command ids it handled and does
nothing for one it saw (the dedupe a saga's deterministic ids are for), and
records each effect, so "once" is counted.
"""

from __future__ import annotations

import asyncio

import pytest
from saga_test_model import (
    CancelReservation,
    Clock,
    CreateOrder,
    ItemsReserved,
    OrderCreated,
    OrderSaga,
    OrderShipped,
    Shop,
    check_a_hand_written_saga_keeps_its_typed_state,
    check_recovery_claims_only_sagas_in_flight_once,
    check_the_worker_resumes_a_crashed_saga_in_the_background,
)

from cqrs_ddd_advanced_core.adapters.memory import InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas import SagaDefinitionError, bootstrap_sagas


async def test_an_order_goes_through_every_step_and_the_saga_completes() -> None:
    shop = Shop()
    sagas = shop.sagas(InMemorySagaRepository())

    await shop.mediator.send(CreateOrder(order_id="order_123"))

    assert shop.effects == [
        ("CreateOrder", "order_123"),
        ("ReserveItems", "order_123"),
        ("ChargePayment", "order_123"),
        ("ConfirmOrder", "order_123"),
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_123")
    assert state is not None
    assert state.status == "completed"
    assert [(step.step, step.outcome) for step in state.steps] == [
        ("reserving", "done"),
        ("charging", "done"),
        ("confirming", "done"),
    ]


async def test_a_failing_charge_cancels_the_reservation_and_the_saga_is_compensated() -> None:
    shop = Shop()
    shop.declined.add("order_9")
    sagas = shop.sagas(InMemorySagaRepository())

    await shop.mediator.send(CreateOrder(order_id="order_9"))

    assert shop.effects == [
        ("CreateOrder", "order_9"),
        ("ReserveItems", "order_9"),
        ("CancelReservation", "order_9"),
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_9")
    assert state is not None
    assert (state.status, state.reason) == ("compensated", "PermissionError: card declined")
    assert [(step.step, step.outcome) for step in state.steps] == [
        ("reserving", "compensated"),
        ("charging", "failed"),
    ]


async def test_a_compensation_that_keeps_failing_parks_the_saga() -> None:
    shop = Shop()
    shop.declined.add("order_p")
    shop.cancel_fails = True
    sagas = shop.sagas(InMemorySagaRepository())

    await shop.mediator.send(CreateOrder(order_id="order_p"))

    state = await sagas.manager.state_of(OrderSaga, "order_p")
    assert state is not None
    assert state.status == "parked"
    assert state.reason == "compensation of 'reserving' failed: TimeoutError: warehouse unreachable"
    assert ("CancelReservation", "order_p") not in shop.effects


async def test_two_starting_events_at_once_make_one_saga() -> None:
    shop = Shop()
    sagas = shop.sagas(InMemorySagaRepository())
    first = OrderCreated(order_id="order_2", aggregate_id="order_2")
    second = OrderCreated(order_id="order_2", aggregate_id="order_2")

    await asyncio.gather(sagas.manager.handle(first), sagas.manager.handle(second))

    assert [effect for effect in shop.effects if effect[0] == "ReserveItems"] == [
        ("ReserveItems", "order_2")
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_2")
    assert state is not None
    assert state.status == "completed"


async def test_a_crash_before_the_command_is_sent_is_recovered_by_the_worker() -> None:
    shop = Shop()
    sagas = shop.sagas(InMemorySagaRepository(), recovery_interval=0.0)
    shop.crash_on = "ChargePayment"

    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="order_c"))
    state = await sagas.manager.state_of(OrderSaga, "order_c")
    assert state is not None
    assert [(step.step, step.outcome) for step in state.steps][-1] == ("charging", "sent")

    assert await sagas.worker.run_once() == 1
    state = await sagas.manager.state_of(OrderSaga, "order_c")
    assert state is not None
    assert state.status == "completed"
    assert [effect for effect in shop.effects if effect[0] == "ChargePayment"] == [
        ("ChargePayment", "order_c")
    ]


async def test_the_worker_starts_and_stops() -> None:
    await check_the_worker_resumes_a_crashed_saga_in_the_background(InMemorySagaRepository())


async def test_events_no_saga_listens_to_or_that_start_nothing_are_ignored() -> None:
    shop = Shop()
    sagas = shop.sagas(InMemorySagaRepository())
    await sagas.manager.handle(OrderShipped(order_id="o", aggregate_id="o"))
    await sagas.manager.handle(ItemsReserved(order_id="o", aggregate_id="o"))  # no instance yet
    assert shop.effects == []
    assert await sagas.manager.state_of(OrderSaga, "o") is None


def test_the_default_registry_is_the_mediator_s_commands_and_names_must_be_unique() -> None:
    shop = Shop()
    result = bootstrap_sagas(
        sagas=[OrderSaga], repository=InMemorySagaRepository(), command_bus=shop.mediator
    )
    assert result.manager.message_registry.is_registered(CancelReservation)
    with pytest.raises(SagaDefinitionError, match="two sagas share this name"):
        bootstrap_sagas(
            sagas=[OrderSaga, OrderSaga],
            repository=InMemorySagaRepository(),
            command_bus=shop.mediator,
        )


async def test_a_hand_written_saga_keeps_its_typed_state() -> None:
    await check_a_hand_written_saga_keeps_its_typed_state(InMemorySagaRepository())


async def test_recovery_claims_only_sagas_in_flight_once() -> None:
    clock = Clock()

    async def age(seconds: float) -> None:
        clock.now += seconds

    repository = InMemorySagaRepository(clock=clock)
    await check_recovery_claims_only_sagas_in_flight_once(repository, age)
