"""An in-memory unit of work: staged changes applied atomically on commit."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from cqrs_ddd_core.exceptions import UnitOfWorkError


@dataclass
class _StagedChange:
    check: Callable[[], None]
    apply: Callable[[], None]
    discard: Callable[[], None] | None = None


def _discard_all(changes: list[_StagedChange]) -> None:
    for change in changes:
        if change.discard is not None:
            change.discard()


class InMemoryUnitOfWork:
    """A unit of work for in-memory adapters, with real transactional behaviour.

    Adapters :meth:`stage` changes instead of applying them. :meth:`commit` first
    runs every staged change's check (for example an optimistic-concurrency
    comparison), then, only if all pass, applies every change. Nothing awaits
    between the checks and the last apply, so on one event loop a commit is
    atomic and isolated from other commands. Rolling back, or leaving the
    ``async with`` block without committing, discards the staged changes.
    """

    def __init__(self) -> None:
        self._staged: dict[Hashable, _StagedChange] = {}
        self._active = False
        self.commits = 0

    async def __aenter__(self) -> Self:
        if self._active:
            raise UnitOfWorkError("this unit of work is already in use; build one per command")
        self._active = True
        self._staged = {}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.rollback()
        self._active = False

    def stage(
        self,
        key: Hashable,
        *,
        check: Callable[[], None],
        apply: Callable[[], None],
        discard: Callable[[], None] | None = None,
    ) -> None:
        """Stage a change under ``key``; staging the same key again keeps the first check.

        Keeping the first check means an aggregate saved twice in one command is
        checked against the version it was loaded at. ``discard`` runs if the
        change is rolled back instead of applied (to release what staging took).
        """
        if not self._active:
            raise UnitOfWorkError("stage() called outside `async with` of the unit of work")
        earlier = self._staged.get(key)
        if earlier is not None and earlier.discard is not None:
            earlier.discard()
        self._staged[key] = _StagedChange(
            check=earlier.check if earlier else check, apply=apply, discard=discard
        )

    async def commit(self) -> None:
        """Check every staged change, then apply them all; on a failed check apply none."""
        staged, self._staged = list(self._staged.values()), {}
        try:
            for change in staged:
                change.check()
        except BaseException:
            _discard_all(staged)
            raise
        for change in staged:
            change.apply()
        self.commits += 1

    async def rollback(self) -> None:
        """Discard every staged change."""
        staged, self._staged = list(self._staged.values()), {}
        _discard_all(staged)
