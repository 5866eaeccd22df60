"""TCC sagas and the branch barrier on SQLite and PostgreSQL: the scenarios of ``tcc_test_model``.

The branch handlers run in ``SQLAlchemyUnitOfWork``: the barrier's row and
the branch's effect (a row of ``tcc_effects``) commit or roll back together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tcc_test_model import (
    Effects,
    HoldFunds,
    ReleaseFunds,
    Travel,
    check_a_cancel_before_its_try_undoes_nothing_and_bars_the_try,
    check_a_failed_try_cancels_the_branches_tried,
    check_a_rolled_back_operation_can_run_again,
    check_a_trip_is_tried_then_confirmed,
    check_each_operation_takes_effect_once,
)

from cqrs_ddd_advanced_core.sagas import BarrierOutcome, as_branch_operation
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyBranchBarrier,
    SQLAlchemySagaRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_unit_of_work

pytest_plugins = ["sqlalchemy_fixtures"]

effects_table = Table(
    "tcc_effects",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
)


@pytest_asyncio.fixture
async def travel(engine: AsyncEngine) -> AsyncIterator[tuple[Travel, Effects]]:
    """A travel on ``engine``: each effect a row written in the handler's transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(effects_table.metadata.create_all)

    async def record(name: str) -> None:
        uow = ambient_unit_of_work(engine)
        assert uow is not None
        await uow.connection.execute(insert(effects_table).values(name=name))

    async def read() -> list[str]:
        async with engine.connect() as connection:
            found = await connection.scalars(
                select(effects_table.c.name).order_by(effects_table.c.id)
            )
            return list(found)

    yield (
        Travel(SQLAlchemyBranchBarrier(engine), lambda: SQLAlchemyUnitOfWork(engine), record),
        read,
    )


async def test_a_trip_is_tried_then_confirmed(
    engine: AsyncEngine, travel: tuple[Travel, Effects]
) -> None:
    await check_a_trip_is_tried_then_confirmed(
        travel[0], SQLAlchemySagaRepository(engine), travel[1]
    )


async def test_a_failed_try_cancels_the_branches_tried(
    engine: AsyncEngine, travel: tuple[Travel, Effects]
) -> None:
    await check_a_failed_try_cancels_the_branches_tried(
        travel[0], SQLAlchemySagaRepository(engine), travel[1]
    )


async def test_each_operation_takes_effect_once(travel: tuple[Travel, Effects]) -> None:
    await check_each_operation_takes_effect_once(*travel)


async def test_a_cancel_before_its_try_undoes_nothing_and_bars_the_try(
    travel: tuple[Travel, Effects],
) -> None:
    await check_a_cancel_before_its_try_undoes_nothing_and_bars_the_try(*travel)


async def test_a_rolled_back_operation_can_run_again(travel: tuple[Travel, Effects]) -> None:
    await check_a_rolled_back_operation_can_run_again(*travel)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_cancel_racing_an_uncommitted_try_waits_for_it_and_undoes_it(
    engine: AsyncEngine,
) -> None:
    """PostgreSQL: the cancel's insert of the try's row waits for the try's transaction."""
    barrier = SQLAlchemyBranchBarrier(engine)
    saga_id = uuid4()
    hold = as_branch_operation(
        HoldFunds(account="a"), saga_id=saga_id, branch="funds", operation="try"
    )
    release = as_branch_operation(
        ReleaseFunds(account="a"), saga_id=saga_id, branch="funds", operation="cancel"
    )
    try_entered = asyncio.Event()
    let_try_commit = asyncio.Event()

    async def slow_try() -> BarrierOutcome:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                outcome = await barrier.enter(hold)
            try_entered.set()
            await let_try_commit.wait()
            await uow.commit()
        return outcome

    async def cancel() -> BarrierOutcome:
        await try_entered.wait()
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                outcome = await barrier.enter(release)
            await uow.commit()
        return outcome

    trying = asyncio.create_task(slow_try())
    cancelling = asyncio.create_task(cancel())
    await try_entered.wait()
    await asyncio.sleep(0.3)
    assert not cancelling.done()  # waiting on the try's row
    let_try_commit.set()

    assert await trying == BarrierOutcome.PROCEED
    assert await cancelling == BarrierOutcome.PROCEED  # the try happened: undo it
