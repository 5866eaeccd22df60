"""Undo and redo in memory: the scenarios of ``undo_test_model``, and the concurrency rules."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
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

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemoryUndoLog
from cqrs_ddd_advanced_core.undo import AlreadyUndoneError, UndoError, UndoService
from cqrs_ddd_core import ConcurrencyError, InMemoryUnitOfWork


def in_memory(*, per_user: bool = False) -> Cart:
    return Cart(InMemoryEventStore(), InMemoryUnitOfWork, InMemoryUndoLog(), per_user=per_user)


async def test_the_spec_example() -> None:
    await check_the_spec_example(in_memory())


async def test_a_token_undoes_only_its_own_command() -> None:
    await check_a_token_undoes_only_its_own_command(in_memory())


async def test_the_rules() -> None:
    await check_the_rules(in_memory())


async def test_another_writer_commutes_or_conflicts() -> None:
    await check_another_writer_commutes_or_conflicts(in_memory())


async def test_an_undo_retried_with_its_operation_id_takes_effect_once() -> None:
    await check_an_undo_retried_with_its_operation_id_takes_effect_once(in_memory())


async def test_a_failing_undo_applies_nothing() -> None:
    await check_a_failing_undo_applies_nothing(in_memory())


async def test_bad_input_is_refused_naming_it() -> None:
    await check_bad_input_is_refused_naming_it(in_memory())


async def test_stacks_per_user() -> None:
    await check_stacks_per_user(in_memory(per_user=True))


async def test_two_clients_undoing_one_entry_at_once_one_succeeds() -> None:
    cart = in_memory()
    for round_number in range(50):
        token = await cart.undo_service.execute(add(f"Widget-{round_number}"))
        outcomes = await asyncio.gather(
            cart.undo_service.undo(token, operation_id=uuid4()),
            cart.undo_service.undo(token, operation_id=uuid4()),
            return_exceptions=True,
        )
        # the loser either raced the winner's commit (ConcurrencyError) or came after it
        failures = [outcome for outcome in outcomes if outcome is not None]
        assert len(failures) == 1, outcomes
        assert isinstance(failures[0], ConcurrencyError | AlreadyUndoneError), outcomes
    assert await cart.items("order_123") == []


async def test_undoing_newest_first_goes_all_the_way_down() -> None:
    await check_undoing_newest_first_goes_all_the_way_down(in_memory())


async def test_an_operation_id_belongs_to_one_token_and_action() -> None:
    await check_an_operation_id_belongs_to_one_token_and_action(in_memory())


async def test_the_log_alone_lets_one_of_two_simultaneous_undos_through() -> None:
    await check_the_log_alone_lets_one_of_two_simultaneous_undos_through(in_memory())


async def test_a_command_the_log_could_not_join_gives_no_token() -> None:
    """A sender that runs no before-commit work: the command ran, but nothing logged it."""
    cart = in_memory()

    class Bare:
        registry = cart.mediator.registry

        async def send(self, command: object) -> None:
            return None

    service = UndoService(Bare(), cart.undo_service.executors, InMemoryUndoLog())
    with pytest.raises(UndoError, match="it was not logged and cannot be undone"):
        await service.execute(add("Widget"))


async def test_undo_last_retried_with_its_operation_id_undoes_once() -> None:
    await check_undo_last_retried_with_its_operation_id_undoes_once(in_memory())
