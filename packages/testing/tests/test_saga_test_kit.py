"""The saga test kit on the spec's OrderFulfillment (and a timed variant): what it lets a test say.

Each crash point the kit simulates is shown recovering with exactly-once
effects: between the saga's state and its send, between a step's effect and
the saga recording it, and in the middle of compensating.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from saga_test_model import (
    CancelReservation,
    ChargePayment,
    ConfirmOrder,
    ItemsReserved,
    OrderCreated,
    OrderSaga,
    PaymentCharged,
    ReserveItems,
    TimedFulfillment,
)

from cqrs_ddd_advanced_core.sagas import (
    SagaBuilder,
    SagaState,
    StepRecord,
    StoredCommand,
    command_id_for,
)
from cqrs_ddd_core import Command, DomainEvent
from cqrs_ddd_testing.sagas import SagaTestKit, saga_problems


def order_kit(saga: type = OrderSaga) -> SagaTestKit:
    """The kit with the shop's replies: a reservation reserves, a charge charges."""
    kit = SagaTestKit(saga)
    kit.reply(ReserveItems, lambda c: [ItemsReserved(order_id=c.order_id, aggregate_id=c.order_id)])
    kit.reply(
        ChargePayment, lambda c: [PaymentCharged(order_id=c.order_id, aggregate_id=c.order_id)]
    )
    return kit


def created(order_id: str) -> OrderCreated:
    return OrderCreated(order_id=order_id, aggregate_id=order_id)


async def test_given_an_event_the_saga_sends_each_step_and_completes() -> None:
    kit = order_kit()

    await kit.publish(created("o1"))

    kit.expect_commands(
        ReserveItems(order_id="o1"), ChargePayment(order_id="o1"), ConfirmOrder(order_id="o1")
    )
    assert (await kit.state(OrderSaga, "o1")).status == "completed"
    await kit.verify()


async def test_a_failing_step_is_compensated() -> None:
    kit = order_kit()
    kit.fail(ChargePayment, PermissionError("card declined"))

    await kit.publish(created("o2"))

    kit.expect_effects(ReserveItems(order_id="o2"), CancelReservation(order_id="o2"))
    state = await kit.state(OrderSaga, "o2")
    assert (state.status, state.reason) == (
        "compensated",
        "PermissionError: card declined",
    )
    await kit.verify()


async def test_a_crash_between_the_state_and_the_send_is_recovered() -> None:
    kit = order_kit()
    kit.crash(ChargePayment)  # the saga saved the step, the process died before sending it

    await kit.publish(created("o3"))
    assert (await kit.state(OrderSaga, "o3")).status == "running"
    assert await kit.recover() == 1

    kit.expect_effects(
        ReserveItems(order_id="o3"), ChargePayment(order_id="o3"), ConfirmOrder(order_id="o3")
    )
    await kit.verify()


async def test_a_crash_between_an_effect_and_the_saga_recording_it_has_one_effect() -> None:
    kit = order_kit()
    kit.crash(ReserveItems, after_effect=True)

    await kit.publish(created("o4"))
    await kit.recover()

    assert kit.commands().count("ReserveItems") == 2  # sent again after the crash…
    kit.expect_effects(  # …and it took effect once
        ReserveItems(order_id="o4"), ChargePayment(order_id="o4"), ConfirmOrder(order_id="o4")
    )
    await kit.verify()


async def test_a_crash_in_the_middle_of_compensating_compensates_once() -> None:
    kit = order_kit()
    kit.fail(ChargePayment, PermissionError("card declined"))
    kit.crash(CancelReservation, after_effect=True)

    await kit.publish(created("o5"))
    assert (await kit.state(OrderSaga, "o5")).status == "compensating"
    await kit.recover()

    assert kit.commands().count("CancelReservation") == 2
    kit.expect_effects(ReserveItems(order_id="o5"), CancelReservation(order_id="o5"))
    assert (await kit.state(OrderSaga, "o5")).status == "compensated"
    await kit.verify()


async def test_the_fake_clock_fires_a_step_timeout() -> None:
    kit = order_kit(TimedFulfillment)
    kit.crash(ChargePayment, after_effect=True)  # its outcome never comes back
    kit.reply(ChargePayment, lambda c: [])

    await kit.publish(created("o6"))
    assert await kit.advance(timedelta(minutes=4)) == 0
    assert await kit.advance(timedelta(minutes=2)) == 1

    state = await kit.state(TimedFulfillment, "o6")
    assert (state.status, state.reason) == ("compensated", "step 'charging' timed out")
    kit.expect_effects(
        ReserveItems(order_id="o6"), ChargePayment(order_id="o6"), CancelReservation(order_id="o6")
    )
    await kit.verify()


async def test_verify_names_a_saga_left_unfinished() -> None:
    kit = order_kit()
    kit.crash(ChargePayment)
    await kit.publish(created("o7"))

    with pytest.raises(AssertionError, match="OrderFulfillment 'o7' is running"):
        await kit.verify()


async def test_expect_commands_shows_what_was_sent() -> None:
    kit = order_kit()
    await kit.publish(created("o8"))

    with pytest.raises(AssertionError, match="ReserveItems"):
        kit.expect_commands(ReserveItems(order_id="o8"))


def two_step_state(status: str) -> SagaState:
    """A saga that took two undoable steps, ``a`` then ``b``, now ``status``."""
    saga_id = uuid4()
    stored = StoredCommand(command_type="X", payload={})
    steps = [
        StepRecord(
            step=name,
            command=stored,
            command_id=command_id_for(saga_id, name, "forward"),
            outcome="compensated" if status == "compensated" else "done",
            compensation=stored,
        )
        for name in ("a", "b")
    ]
    return SagaState(
        saga_id=saga_id, saga_type="Two", correlation_key="k", status=status, steps=steps
    )  # type: ignore[arg-type]


def ids(state: SagaState, *moves: str) -> list[UUID]:
    """The ids of ``moves`` ("a", "b" forward; "-a", "-b" their compensations), in order."""
    return [
        command_id_for(state.saga_id, move.lstrip("-"), "compensate" if "-" in move else "forward")
        for move in moves
    ]


def test_saga_problems_accepts_compensation_latest_first() -> None:
    state = two_step_state("compensated")
    assert saga_problems([state], ids(state, "a", "b", "-b", "-a")) == []


def test_saga_problems_names_each_broken_guarantee() -> None:
    state = two_step_state("compensated")

    assert saga_problems([state], ids(state, "a", "b", "-a", "-b")) == [
        "Two 'k': compensations not in reverse order of the steps"
    ]
    assert saga_problems([state], ids(state, "a", "b", "-b")) == [
        "Two 'k': step 'a' took effect, never compensated"
    ]
    twice = ids(state, "a", "a", "b", "-b", "-a")
    assert saga_problems([state], twice) == [f"command {twice[0]} took effect twice"]
    completed = two_step_state("completed")
    assert saga_problems([completed], ids(completed, "a", "b", "-b")) == [
        "Two 'k': completed, yet step 'b' was compensated"
    ]
    running = two_step_state("running")
    assert saga_problems([running], []) == ["Two 'k' is running (no reason)"]


class Shipped(DomainEvent):
    order_id: str


class Ship(Command):
    order_id: str


class Unship(Command):
    order_id: str


ThreeSteps = (
    SagaBuilder("ThreeSteps")
    .on(OrderCreated,
        send=lambda e: ReserveItems(order_id=e.order_id),
        step="reserving",
        compensate=lambda e: CancelReservation(order_id=e.order_id))
    .on(ItemsReserved,
        send=lambda e: Ship(order_id=e.order_id),
        step="shipping",
        compensate=lambda e: Unship(order_id=e.order_id))
    .on(Shipped,
        send=lambda e: ChargePayment(order_id=e.order_id),
        step="charging",
        complete=True)
    .build()
)  # fmt: skip


async def test_steps_resent_after_a_crash_are_compensated_latest_first() -> None:
    """After the crash, recovery sends the reservation again (done already), then the
    shipment, whose event starts the charge, which fails: the shipment is still being
    handled, so its undo must wait for its outcome and come before the reservation's."""
    kit = order_kit(ThreeSteps)
    kit.reply(Ship, lambda c: [Shipped(order_id=c.order_id, aggregate_id=c.order_id)])
    kit.crash(Ship)
    kit.fail(ChargePayment, PermissionError("card declined"))

    await kit.publish(created("o9"))
    await kit.recover()

    kit.expect_effects(
        ReserveItems(order_id="o9"),
        Ship(order_id="o9"),
        Unship(order_id="o9"),
        CancelReservation(order_id="o9"),
    )
    await kit.verify()


ReserveWithTimeout = (
    SagaBuilder("ReserveWithTimeout")
    .on(OrderCreated,
        send=lambda e: ReserveItems(order_id=e.order_id),
        step="reserving",
        compensate=lambda e: CancelReservation(order_id=e.order_id),
        timeout=timedelta(minutes=5))
    .on(ItemsReserved,
        send=lambda e: ChargePayment(order_id=e.order_id),
        step="charging",
        complete=True)
    .build()
)  # fmt: skip


async def test_a_late_reply_to_a_compensating_saga_starts_no_forward_step() -> None:
    kit = SagaTestKit(ReserveWithTimeout)
    kit.crash(ReserveItems)  # the reservation is never sent: it times out
    await kit.publish(created("o10"))
    kit.crash(CancelReservation)  # the process dies before undoing it
    await kit.advance(timedelta(minutes=6))
    assert (await kit.state(ReserveWithTimeout, "o10")).status == "compensating"

    await kit.publish(ItemsReserved(order_id="o10", aggregate_id="o10"))  # the late reply
    await kit.recover()

    assert "ChargePayment" not in kit.commands()
    assert (await kit.state(ReserveWithTimeout, "o10")).status == "compensated"
    await kit.verify()


async def test_verify_needs_a_saga() -> None:
    kit = order_kit()
    await kit.publish(ItemsReserved(order_id="nobody", aggregate_id="nobody"))

    with pytest.raises(AssertionError, match="no saga instance"):
        await kit.verify()


def test_saga_problems_names_a_step_that_took_effect_after_compensating_began() -> None:
    state = two_step_state("compensated")
    assert saga_problems([state], ids(state, "a", "-a", "b", "-b")) == [
        "Two 'k': step 'b' took effect after compensating began",
        "Two 'k': compensations not in reverse order of the steps",
    ]
