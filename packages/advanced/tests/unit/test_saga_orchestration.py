"""Saga decisions: the spec's OrderFulfillment built with SagaBuilder, run step by step.

No manager and no store here: these tests drive a saga object the way the
saga manager will (events in, step outcomes reported back) and check what it
decides: which commands, with which deterministic ids, what to undo and in
which order, and when it ends.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from saga_test_model import (
    CancelReservation,
    ChargePayment,
    ConfirmOrder,
    ItemsReserved,
    OrderCreated,
    OrderSaga,
    OrderShipped,
    PaymentCharged,
    ReserveItems,
)

from cqrs_ddd_advanced_core.sagas import (
    Saga,
    SagaBuilder,
    SagaDefinitionError,
    SagaState,
    SagaStepError,
    command_id_for,
)
from cqrs_ddd_core import Command, DomainEvent, MessageTypeRegistry


class RefundPayment(Command):
    order_id: str


REGISTRY = MessageTypeRegistry(
    [ReserveItems, CancelReservation, ChargePayment, RefundPayment, ConfirmOrder]
)


def started(saga_type: type[Saga[SagaState]], key: str = "order-1") -> Saga[SagaState]:
    return saga_type(saga_type.new_state(uuid4(), key), REGISTRY)


async def sent(saga: Saga[SagaState], event: DomainEvent) -> list[Command]:
    assert await saga.receive(event)
    return [outgoing.command for outgoing in saga.take_outbox()]


def test_the_builder_makes_a_saga_subclass_that_starts_with_its_first_event() -> None:
    assert issubclass(OrderSaga, Saga)
    assert OrderSaga.name == "OrderFulfillment"
    assert list(OrderSaga.listens_to) == [OrderCreated, ItemsReserved, PaymentCharged]
    assert OrderSaga.can_start(OrderCreated(order_id="o", aggregate_id="o"))
    assert not OrderSaga.can_start(ItemsReserved(order_id="o", aggregate_id="o"))


async def test_the_happy_path_sends_each_step_once_and_completes() -> None:
    saga = started(OrderSaga)
    saga_id = saga.state.saga_id

    (reserve,) = await sent(saga, OrderCreated(order_id="order-1"))
    assert reserve == ReserveItems(order_id="order-1", command_id=reserve.command_id)
    assert reserve.command_id == command_id_for(saga_id, "reserving", "forward")
    saga.step_done("reserving")
    (charge,) = await sent(saga, ItemsReserved(order_id="order-1"))
    assert isinstance(charge, ChargePayment)
    saga.step_done("charging")
    (confirm,) = await sent(saga, PaymentCharged(order_id="order-1"))
    assert isinstance(confirm, ConfirmOrder)
    assert saga.state.status == "running"  # complete once the confirming step is done
    saga.step_done("confirming")

    assert saga.state.status == "completed"
    assert [record.step for record in saga.state.steps] == ["reserving", "charging", "confirming"]
    assert {record.outcome for record in saga.state.steps} == {"done"}


async def test_a_failed_charge_cancels_the_reservation_and_ends_compensated() -> None:
    saga = started(OrderSaga)
    await sent(saga, OrderCreated(order_id="order-1"))
    saga.step_done("reserving")
    await sent(saga, ItemsReserved(order_id="order-1"))

    (undo,) = saga.step_failed("charging", "card declined")
    assert saga.state.status == "compensating"
    assert undo.step == "reserving"
    command = saga.compensation_command(undo)
    assert command == CancelReservation(order_id="order-1", command_id=command.command_id)
    assert command.command_id == command_id_for(saga.state.saga_id, "reserving", "compensate")

    saga.compensation_done("reserving")
    assert saga.state.status == "compensated"
    assert saga.state.reason == "card declined"
    assert saga.pending_compensations() == []
    version = saga.state.model_copy(deep=True)
    assert saga.compensation_done("reserving") is False  # a second runner's report: no change
    assert saga.state == version
    with pytest.raises(SagaStepError, match="nothing to undo"):
        saga.compensation_done("charging")  # it failed: it did nothing to undo


class Fulfilment(Saga[SagaState]):
    """Written by hand: three undoable steps, to watch the order of compensation."""

    listens_to = (OrderCreated, ItemsReserved, PaymentCharged)
    correlate_by = "order_id"

    async def handle(self, event: DomainEvent) -> None:
        assert isinstance(event, OrderCreated | ItemsReserved | PaymentCharged)
        if isinstance(event, OrderCreated):
            self.send(
                ReserveItems(order_id=event.order_id),
                step="reserve",
                compensate=CancelReservation(order_id=event.order_id),
            )
        elif isinstance(event, ItemsReserved):
            self.send(
                ChargePayment(order_id=event.order_id),
                step="charge",
                compensate=RefundPayment(order_id=event.order_id),
            )
        else:
            self.send(
                ConfirmOrder(order_id=event.order_id),
                step="confirm",
                compensate=CancelReservation(order_id=f"{event.order_id}-confirm"),
            )
            self.complete()  # fmt: skip


async def test_compensations_run_latest_first_and_an_unknown_outcome_is_undone_too() -> None:
    saga = started(Fulfilment)
    await sent(saga, OrderCreated(order_id="o"))
    saga.step_done("reserve")
    await sent(saga, ItemsReserved(order_id="o"))
    saga.step_done("charge")
    await sent(saga, PaymentCharged(order_id="o"))

    # the confirm command's commit was cut off: it may have happened
    plan = saga.step_failed("confirm", "connection lost during COMMIT", unknown=True)
    assert [undo.step for undo in plan] == ["confirm", "charge", "reserve"]
    assert [type(saga.compensation_command(undo)) for undo in plan] == [
        CancelReservation,
        RefundPayment,
        CancelReservation,
    ]
    saga.compensation_done("confirm")
    assert [undo.step for undo in saga.pending_compensations()] == ["charge", "reserve"]


async def test_a_compensation_that_keeps_failing_parks_the_saga_with_its_history() -> None:
    saga = started(Fulfilment)
    await sent(saga, OrderCreated(order_id="o"))
    saga.step_done("reserve")
    await sent(saga, ItemsReserved(order_id="o"))
    saga.step_failed("charge", "card declined")
    saga.compensation_failed("reserve", "warehouse unreachable")

    assert saga.state.status == "parked"
    assert saga.state.is_final
    assert saga.state.reason == "compensation of 'reserve' failed: warehouse unreachable"
    assert [entry.what for entry in saga.state.history][-1] == saga.state.reason
    assert not await saga.receive(PaymentCharged(order_id="o"))  # an ended saga ignores events


async def test_an_event_delivered_twice_is_handled_once() -> None:
    saga = started(OrderSaga)
    created = OrderCreated(order_id="order-1")
    assert len(await sent(saga, created)) == 1
    assert not await saga.receive(created)
    assert saga.take_outbox() == []


async def test_a_step_is_taken_once() -> None:
    declared = started(OrderSaga)
    await sent(declared, OrderCreated(order_id="order-1"))
    # another starting event for the same instance: a declared saga ignores it
    assert await declared.receive(OrderCreated(order_id="order-1"))
    assert declared.take_outbox() == []
    assert len(declared.state.steps) == 1

    written = started(Fulfilment)
    await sent(written, OrderCreated(order_id="o"))
    with pytest.raises(SagaStepError, match="reserve"):  # a saga written by hand is told
        await written.receive(OrderCreated(order_id="o"))


def test_events_name_their_instance_by_field_or_aggregate_id() -> None:
    event = ItemsReserved(order_id="order-7", aggregate_id="inventory-3", correlation_id="c-1")
    assert Fulfilment.correlation_key(event) == "order-7"  # correlate_by = "order_id"
    assert OrderSaga.correlation_key(event) == "inventory-3"  # the aggregate id by default
    assert OrderSaga.correlation_key(ItemsReserved(order_id="x", correlation_id="c-1")) == "c-1"
    keyed = SagaBuilder("Keyed").correlate_by("order_id").on(OrderCreated, complete=True).build()
    assert keyed.correlation_key(event) == "order-7"


def test_an_event_type_the_saga_does_not_know_is_not_for_it() -> None:
    assert not OrderSaga.handles(OrderShipped(order_id="o"))
    assert OrderSaga.handles(ItemsReserved(order_id="o"))


async def test_a_completing_reaction_without_a_command_completes_at_once() -> None:
    saga_type = SagaBuilder("Short").on(OrderCreated, complete=True).build()
    saga = started(saga_type)
    assert await sent(saga, OrderCreated(order_id="o")) == []
    assert saga.state.status == "completed"


@pytest.mark.parametrize(
    ("builder", "problem"),
    [
        (SagaBuilder("Empty"), "no step declared"),
        (
            SagaBuilder("Twice")
            .on(OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id), step="a")
            .on(OrderCreated, send=lambda e: ChargePayment(order_id=e.order_id), step="b"),
            "OrderCreated is declared twice",
        ),
        (
            SagaBuilder("SameStep")
            .on(OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id), step="work")
            .on(ItemsReserved, send=lambda e: ChargePayment(order_id=e.order_id), step="work"),
            "step 'work' is declared twice",
        ),
        (
            SagaBuilder("EarlyEnd")
            .on(OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id), complete=True)
            .on(ItemsReserved, send=lambda e: ChargePayment(order_id=e.order_id)),
            r"completes the saga, but reactions follow it \(ItemsReserved\)",
        ),
        (
            SagaBuilder("UndoNothing").on(
                OrderCreated, compensate=lambda e: CancelReservation(order_id=e.order_id)
            ),
            "compensates but sends nothing",
        ),
    ],
)
def test_a_declaration_that_cannot_work_is_refused_by_build(
    builder: SagaBuilder, problem: str
) -> None:
    with pytest.raises(SagaDefinitionError, match=problem) as refused:
        builder.build()
    assert refused.value.saga == builder.name


def test_the_state_stores_and_reads_back_as_json() -> None:
    saga = started(OrderSaga)
    state = SagaState.model_validate_json(saga.state.model_dump_json())
    assert state == saga.state
    assert isinstance(state.saga_id, UUID)


async def test_a_failure_reported_for_a_step_done_already_changes_nothing() -> None:
    """A second send of a done step (recovery overlapping) failed: the step's effect stands."""
    saga = started(OrderSaga)
    await sent(saga, OrderCreated(order_id="order-2"))
    saga.step_done("reserving")

    assert saga.step_failed("reserving", "duplicate key") == []
    assert saga.state.status == "running"
    assert saga.state.step("reserving").outcome == "done"  # type: ignore[union-attr]


class TwoAtOnce(Saga[SagaState]):
    """Written by hand: two undoable steps decided on one event."""

    listens_to = (OrderCreated,)
    correlate_by = "order_id"

    async def handle(self, event: DomainEvent) -> None:
        assert isinstance(event, OrderCreated)
        self.send(
            ReserveItems(order_id=event.order_id),
            step="reserve",
            compensate=CancelReservation(order_id=event.order_id),
        )
        self.send(
            ChargePayment(order_id=event.order_id),
            step="charge",
            compensate=RefundPayment(order_id=event.order_id),
        )


async def test_steps_decided_together_but_not_sent_here_count_as_unknown() -> None:
    """This process never sent ``charge``, but a recovery worker may have: undo it, tolerantly."""
    saga = started(TwoAtOnce)
    await sent(saga, OrderCreated(order_id="order-3"))

    plan = saga.step_failed("reserve", "out of stock", not_sent=["charge"])

    assert [(record.step, record.outcome) for record in saga.state.steps] == [
        ("reserve", "failed"),
        ("charge", "unknown"),
    ]
    assert [undo.step for undo in plan] == ["charge"]
