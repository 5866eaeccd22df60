"""Undo and redo on SQLite and PostgreSQL: the scenarios of ``undo_test_model``, and R14's races.

The order is event-sourced in ``cqrs_events``; the undo log is
``SQLAlchemyUndoLog`` (``cqrs_undo_log``), written in each command's own
``SQLAlchemyUnitOfWork``.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from undo_test_model import (
    Cart,
    add,
    check_a_failing_undo_applies_nothing,
    check_a_token_undoes_only_its_own_command,
    check_an_operation_id_belongs_to_one_token_and_action,
    check_an_undo_retried_with_its_operation_id_takes_effect_once,
    check_another_writer_commutes_or_conflicts,
    check_bad_input_is_refused_naming_it,
    check_stacks_per_user,
    check_the_log_alone_lets_one_of_two_simultaneous_undos_through,
    check_the_rules,
    check_the_spec_example,
    check_undo_last_retried_with_its_operation_id_undoes_once,
    check_undoing_newest_first_goes_all_the_way_down,
)

from cqrs_ddd_advanced_core.undo import UndoFailedError
from cqrs_ddd_core import ConcurrencyError
from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE, reset_failpoints
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUndoLog,
    SQLAlchemyUnitOfWork,
)

pytest_plugins = ["sqlalchemy_fixtures"]


def cart_on(engine: AsyncEngine, *, per_user: bool = False) -> Cart:
    return Cart(
        SQLAlchemyEventStore(engine),
        lambda: SQLAlchemyUnitOfWork(engine),
        SQLAlchemyUndoLog(engine),
        per_user=per_user,
    )


async def test_the_spec_example(engine: AsyncEngine) -> None:
    await check_the_spec_example(cart_on(engine))


async def test_a_token_undoes_only_its_own_command(engine: AsyncEngine) -> None:
    await check_a_token_undoes_only_its_own_command(cart_on(engine))


async def test_the_rules(engine: AsyncEngine) -> None:
    await check_the_rules(cart_on(engine))


async def test_another_writer_commutes_or_conflicts(engine: AsyncEngine) -> None:
    await check_another_writer_commutes_or_conflicts(cart_on(engine))


async def test_an_undo_retried_with_its_operation_id_takes_effect_once(
    engine: AsyncEngine,
) -> None:
    await check_an_undo_retried_with_its_operation_id_takes_effect_once(cart_on(engine))


async def test_a_failing_undo_applies_nothing(engine: AsyncEngine) -> None:
    await check_a_failing_undo_applies_nothing(cart_on(engine))


async def test_bad_input_is_refused_naming_it(engine: AsyncEngine) -> None:
    await check_bad_input_is_refused_naming_it(cart_on(engine))


async def test_stacks_per_user(engine: AsyncEngine) -> None:
    await check_stacks_per_user(cart_on(engine, per_user=True))


async def test_a_crash_before_the_undo_commits_then_a_retry_gives_one_undo(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cart = cart_on(engine)
    token = await cart.undo_service.execute(add("Widget"))
    operation = uuid4()
    monkeypatch.setenv(FAILPOINTS_VARIABLE, "unit_of_work.before_commit:raise@1")
    reset_failpoints()
    # the undo was decided, its transaction never committed
    with pytest.raises(UndoFailedError, match="FailpointError"):
        await cart.undo_service.undo(token, operation_id=operation)
    monkeypatch.delenv(FAILPOINTS_VARIABLE)
    assert await cart.items("order_123") == ["Widget"]

    await cart.undo_service.undo(token, operation_id=operation)
    await cart.undo_service.undo(token, operation_id=operation)

    assert await cart.items("order_123") == []
    removed = [
        stored
        for stored in await cart.event_store.load_stream("order_123")
        if stored.event_type == "OrderLineRemoved"
    ]
    assert len(removed) == 1


async def test_two_clients_undoing_one_entry_at_once_200_times_one_succeeds(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both clients decide to undo (the entry is done), then both commit: one wins.

    Each commit is held back 20 ms, so the two undos are in flight together
    every round, whatever the scheduling: the second to commit finds the
    entry's version moved on (on PostgreSQL its update waits for the first
    transaction; on SQLite its ``BEGIN IMMEDIATE`` does).
    """
    cart = cart_on(engine)
    for round_number in range(200):
        token = await cart.undo_service.execute(add(f"Widget-{round_number}"))
        monkeypatch.setenv(FAILPOINTS_VARIABLE, "unit_of_work.before_commit:sleep(20)")
        outcomes = await asyncio.gather(
            cart.undo_service.undo(token, operation_id=uuid4()),
            cart.undo_service.undo(token, operation_id=uuid4()),
            return_exceptions=True,
        )
        monkeypatch.delenv(FAILPOINTS_VARIABLE)
        failures = [outcome for outcome in outcomes if outcome is not None]
        assert len(failures) == 1, (round_number, outcomes)
        assert isinstance(failures[0], ConcurrencyError), (round_number, outcomes)
    assert await cart.items("order_123") == []


async def test_undoing_newest_first_goes_all_the_way_down(engine: AsyncEngine) -> None:
    await check_undoing_newest_first_goes_all_the_way_down(cart_on(engine))


async def test_an_operation_id_belongs_to_one_token_and_action(engine: AsyncEngine) -> None:
    await check_an_operation_id_belongs_to_one_token_and_action(cart_on(engine))


async def test_the_log_alone_lets_one_of_two_simultaneous_undos_through(
    engine: AsyncEngine,
) -> None:
    await check_the_log_alone_lets_one_of_two_simultaneous_undos_through(cart_on(engine))


async def test_undo_last_retried_with_its_operation_id_undoes_once(engine: AsyncEngine) -> None:
    await check_undo_last_retried_with_its_operation_id_undoes_once(cart_on(engine))
