"""Staging a write of an in-memory adapter in the command's ``InMemoryUnitOfWork``."""

from __future__ import annotations

from collections.abc import Callable

from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import UnitOfWorkError


def stage_with_command(
    adapter: str, key: object, check: Callable[[], None], apply: Callable[[], None]
) -> None:
    """Stage ``apply`` (after ``check``) in the command's unit of work; outside one, do it now.

    ``adapter`` names the store in the ``UnitOfWorkError`` raised when the
    command's unit of work is not an ``InMemoryUnitOfWork`` (its writes would
    commit apart from the command).
    """
    scope = current_scope_or_none()
    if scope is None:
        check()
        apply()
        return
    if not isinstance(scope.uow, InMemoryUnitOfWork):
        raise UnitOfWorkError(
            f"the in-memory {adapter} cannot join a {type(scope.uow).__qualname__}"
        )
    scope.uow.stage(key, check=check, apply=apply)
