"""Step timeouts and saga deadlines in memory: the scenarios of ``saga_test_model``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from saga_test_model import (
    ChargePayment,
    Clock,
    ItemsReserved,
    OrderCreated,
    ReserveItems,
    Shop,
    TimedFulfillment,
    TimedShop,
    check_a_saga_waiting_past_its_deadline_compensates,
    check_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline,
    check_a_step_whose_outcome_never_comes_times_out_and_compensates,
    check_a_timeout_firing_after_its_step_completed_changes_nothing,
)

from cqrs_ddd_advanced_core.adapters.memory import InMemoryCommandScheduler, InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas import SagaBuilder, SagaDefinitionError


def in_memory() -> TimedShop:
    clock = Clock()
    return TimedShop(
        InMemorySagaRepository(clock=clock), InMemoryCommandScheduler(clock=clock), clock
    )


async def test_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline() -> None:
    await check_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline(in_memory())


async def test_a_step_whose_outcome_never_comes_times_out_and_compensates() -> None:
    await check_a_step_whose_outcome_never_comes_times_out_and_compensates(in_memory())


async def test_a_saga_waiting_past_its_deadline_compensates() -> None:
    await check_a_saga_waiting_past_its_deadline_compensates(in_memory())


async def test_a_timeout_firing_after_its_step_completed_changes_nothing() -> None:
    await check_a_timeout_firing_after_its_step_completed_changes_nothing(in_memory())


def test_a_saga_with_timeouts_needs_a_scheduler() -> None:
    with pytest.raises(SagaDefinitionError, match=r"'TimedFulfillment'.*pass scheduler="):
        Shop().sagas(InMemorySagaRepository(), saga_types=[TimedFulfillment])


def test_a_timeout_needs_a_step_that_sends_and_a_positive_length() -> None:
    builder = SagaBuilder("Broken").on(
        OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id)
    )
    builder.on(
        ItemsReserved, send=lambda e: ChargePayment(order_id=e.order_id), timeout=timedelta(0)
    )
    with pytest.raises(SagaDefinitionError, match="ItemsReserved has timeout=0:00:00"):
        builder.build()
