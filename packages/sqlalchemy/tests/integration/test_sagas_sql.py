"""Sagas on SQLite and PostgreSQL: the spec's OrderFulfillment with SQLAlchemySagaRepository.

The shop's handlers stay in memory (they dedupe by command id and count
effects); the saga instances live in ``cqrs_sagas``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from saga_test_model import (
    Clock,
    CreateOrder,
    OrderCreated,
    OrderSaga,
    Shop,
    TimedShop,
    check_a_hand_written_saga_keeps_its_typed_state,
    check_a_saga_waiting_past_its_deadline_compensates,
    check_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline,
    check_a_step_whose_outcome_never_comes_times_out_and_compensates,
    check_a_timeout_firing_after_its_step_completed_changes_nothing,
    check_recovery_claims_only_sagas_in_flight_once,
    check_the_worker_resumes_a_crashed_saga_in_the_background,
)
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemySagaRepository,
    SQLAlchemyUnitOfWork,
    UnreadableSagaStateError,
)
from cqrs_ddd_persistence_sqlalchemy.schema import sagas as saga_rows
from cqrs_ddd_persistence_sqlalchemy.schema import scheduled_commands as schedule_rows

pytest_plugins = ["sqlalchemy_fixtures"]


async def test_an_order_completes_and_its_saga_is_one_row(engine: AsyncEngine) -> None:
    shop = Shop()
    sagas = shop.sagas(SQLAlchemySagaRepository(engine))

    await shop.mediator.send(CreateOrder(order_id="order_123"))

    assert [effect[0] for effect in shop.effects] == [
        "CreateOrder",
        "ReserveItems",
        "ChargePayment",
        "ConfirmOrder",
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_123")
    assert state is not None
    assert state.status == "completed"
    async with engine.connect() as connection:
        row = (await connection.execute(select(saga_rows))).one()
    assert (row.saga_type, row.correlation_key, row.status) == (
        "OrderFulfillment",
        "order_123",
        "completed",
    )
    assert row.version == state.version


async def test_a_failing_charge_is_compensated(engine: AsyncEngine) -> None:
    shop = Shop()
    shop.declined.add("order_9")
    sagas = shop.sagas(SQLAlchemySagaRepository(engine))

    await shop.mediator.send(CreateOrder(order_id="order_9"))

    assert ("CancelReservation", "order_9") in shop.effects
    assert ("ConfirmOrder", "order_9") not in shop.effects
    state = await sagas.manager.state_of(OrderSaga, "order_9")
    assert state is not None
    assert state.status == "compensated"


async def test_a_crash_before_a_send_is_recovered(engine: AsyncEngine) -> None:
    shop = Shop()
    sagas = shop.sagas(SQLAlchemySagaRepository(engine), recovery_interval=0.0)
    shop.crash_on = "ChargePayment"
    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="order_c"))

    assert await sagas.worker.run_once() == 1
    state = await sagas.manager.state_of(OrderSaga, "order_c")
    assert state is not None
    assert state.status == "completed"
    assert [effect for effect in shop.effects if effect[0] == "ChargePayment"] == [
        ("ChargePayment", "order_c")
    ]


async def test_starting_events_racing_for_one_order_make_one_saga(engine: AsyncEngine) -> None:
    shop = Shop()
    sagas = shop.sagas(SQLAlchemySagaRepository(engine))
    events = [OrderCreated(order_id="order_r", aggregate_id="order_r") for _ in range(4)]

    await asyncio.gather(*(sagas.manager.handle(event) for event in events))

    assert [effect for effect in shop.effects if effect[0] == "ReserveItems"] == [
        ("ReserveItems", "order_r")
    ]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(saga_rows)) == 1


async def test_a_stored_state_that_no_longer_reads_names_the_saga(engine: AsyncEngine) -> None:
    shop = Shop()
    repository = SQLAlchemySagaRepository(engine)
    sagas = shop.sagas(repository)
    await shop.mediator.send(CreateOrder(order_id="order_x"))
    state = await sagas.manager.state_of(OrderSaga, "order_x")
    assert state is not None
    async with engine.begin() as connection:
        await connection.execute(update(saga_rows).values(state={"saga_id": "not an id"}))

    with pytest.raises(UnreadableSagaStateError, match="OrderFulfillment") as raised:
        await repository.get(state.saga_id)
    assert raised.value.saga_id == state.saga_id


async def test_an_unreadable_saga_is_parked_and_stops_nothing_else(engine: AsyncEngine) -> None:
    shop = Shop()
    shop.crash_on = "ChargePayment"  # leaves order_x mid-step, for the recovery round
    sagas = shop.sagas(SQLAlchemySagaRepository(engine), recovery_interval=0.0)
    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="order_x"))
    shop.crash_on = "ChargePayment"
    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="order_y"))
    async with engine.begin() as connection:  # a release changed the state, or a hand did
        await connection.execute(
            update(saga_rows)
            .where(saga_rows.c.correlation_key == "order_x")
            .values(state={"saga_id": "not an id"})
        )

    # the other instance is resumed; the unreadable one is parked, not retried for ever
    assert await sagas.worker.run_once() == 1
    async with engine.connect() as connection:
        statuses = dict(
            (
                await connection.execute(select(saga_rows.c.correlation_key, saga_rows.c.status))
            ).all()
        )
    assert statuses == {"order_x": "parked", "order_y": "completed"}
    assert await sagas.worker.run_once() == 0
    assert await sagas.manager.repository.stalled(0.0) == []  # never claimed again

    # and an event for it is ignored, with an error logged, instead of failing the command
    await sagas.manager.handle(OrderCreated(order_id="order_x", aggregate_id="order_x"))


# -- timeouts and deadlines: the scheduler and the sagas in one database -------------------


def timed_shop(engine: AsyncEngine) -> TimedShop:
    """The timed saga with its state and its timeouts in ``engine``'s database.

    The SQL scheduler judges what is due by the database's clock, so time
    passes by moving the pending schedules earlier.
    """

    async def advance(seconds: float) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                update(schedule_rows)
                .where(schedule_rows.c.status == "pending")
                .values(
                    due_at=schedule_rows.c.due_at - seconds,
                    available_at=schedule_rows.c.available_at - seconds,
                )
            )

    clock = Clock()
    clock.now = time.time()
    return TimedShop(
        SQLAlchemySagaRepository(engine),
        SQLAlchemyCommandScheduler(engine),
        clock,
        lambda: SQLAlchemyUnitOfWork(engine),
        advance,
    )


async def test_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline(
    engine: AsyncEngine,
) -> None:
    await check_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline(timed_shop(engine))


async def test_a_step_whose_outcome_never_comes_times_out_and_compensates(
    engine: AsyncEngine,
) -> None:
    await check_a_step_whose_outcome_never_comes_times_out_and_compensates(timed_shop(engine))


async def test_a_saga_waiting_past_its_deadline_compensates(engine: AsyncEngine) -> None:
    await check_a_saga_waiting_past_its_deadline_compensates(timed_shop(engine))


async def test_a_timeout_firing_after_its_step_completed_changes_nothing(
    engine: AsyncEngine,
) -> None:
    await check_a_timeout_firing_after_its_step_completed_changes_nothing(timed_shop(engine))


async def test_a_hand_written_saga_keeps_its_typed_state(engine: AsyncEngine) -> None:
    await check_a_hand_written_saga_keeps_its_typed_state(SQLAlchemySagaRepository(engine))


async def test_recovery_claims_only_sagas_in_flight_once(engine: AsyncEngine) -> None:
    async def age(seconds: float) -> None:
        async with engine.begin() as connection:
            older = saga_rows.c.updated_at - seconds
            await connection.execute(update(saga_rows).values(updated_at=older))

    repository = SQLAlchemySagaRepository(engine)
    await check_recovery_claims_only_sagas_in_flight_once(repository, age)


async def test_the_worker_starts_and_stops(engine: AsyncEngine) -> None:
    repository = SQLAlchemySagaRepository(engine)
    await check_the_worker_resumes_a_crashed_saga_in_the_background(repository)
