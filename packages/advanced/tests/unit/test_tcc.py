"""TCC sagas and the branch barrier, in memory: the scenarios of ``tcc_test_model``."""

from __future__ import annotations

from uuid import uuid4

import pytest
from tcc_test_model import (
    Effects,
    HoldFunds,
    Travel,
    TripBooking,
    check_a_cancel_before_its_try_undoes_nothing_and_bars_the_try,
    check_a_failed_try_cancels_the_branches_tried,
    check_a_rolled_back_operation_can_run_again,
    check_a_trip_is_tried_then_confirmed,
    check_each_operation_takes_effect_once,
)

from cqrs_ddd_advanced_core.adapters.memory import InMemoryBranchBarrier, InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas import BarrierError, as_branch_operation
from cqrs_ddd_core import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import command_scope, current_scope


def in_memory() -> tuple[Travel, Effects]:
    """A travel whose effects are staged in the handler's unit of work, applied at its commit."""
    effects: list[str] = []

    async def record(name: str) -> None:
        uow = current_scope().uow
        assert isinstance(uow, InMemoryUnitOfWork)
        uow.stage(uuid4(), check=lambda: None, apply=lambda: effects.append(name))

    async def read() -> list[str]:
        return list(effects)

    return Travel(InMemoryBranchBarrier(), InMemoryUnitOfWork, record), read


async def test_a_trip_is_tried_then_confirmed() -> None:
    travel, effects = in_memory()
    await check_a_trip_is_tried_then_confirmed(travel, InMemorySagaRepository(), effects)


async def test_a_failed_try_cancels_the_branches_tried() -> None:
    travel, effects = in_memory()
    await check_a_failed_try_cancels_the_branches_tried(travel, InMemorySagaRepository(), effects)


async def test_each_operation_takes_effect_once() -> None:
    travel, effects = in_memory()
    await check_each_operation_takes_effect_once(travel, effects)


async def test_a_cancel_before_its_try_undoes_nothing_and_bars_the_try() -> None:
    travel, effects = in_memory()
    await check_a_cancel_before_its_try_undoes_nothing_and_bars_the_try(travel, effects)


async def test_a_rolled_back_operation_can_run_again() -> None:
    travel, effects = in_memory()
    await check_a_rolled_back_operation_can_run_again(travel, effects)


async def test_a_confirm_that_keeps_failing_parks_the_saga_with_its_reason() -> None:
    travel, effects = in_memory()
    sagas = travel.sagas(InMemorySagaRepository())
    recorded = travel.record

    async def airline_down(name: str) -> None:
        if name == "BookSeat":
            raise ConnectionError("the airline is down")
        await recorded(name)

    travel.record = airline_down
    await travel.request("trip-3")

    state = await sagas.manager.state_of(TripBooking, "trip-3")
    assert state is not None
    assert state.status == "parked"
    assert state.reason == "confirmation of 'seat' failed: ConnectionError: the airline is down"
    assert [(record.step, record.outcome) for record in state.steps] == [
        ("funds", "confirmed"),
        ("seat", "done"),
    ]
    assert await effects() == ["HoldFunds", "HoldSeat", "CaptureFunds"]


async def test_a_command_no_saga_sent_is_refused_naming_it() -> None:
    barrier = InMemoryBranchBarrier()
    async with InMemoryUnitOfWork() as uow:
        with (
            command_scope(uow),
            pytest.raises(BarrierError, match=r"HoldFunds .* not an operation"),
        ):
            await barrier.enter(HoldFunds(account="a"))


async def test_the_barrier_must_be_entered_in_the_handlers_unit_of_work() -> None:
    hold = as_branch_operation(
        HoldFunds(account="a"), saga_id=uuid4(), branch="funds", operation="try"
    )
    with pytest.raises(BarrierError, match="inside its handler's InMemoryUnitOfWork"):
        await InMemoryBranchBarrier().enter(hold)
