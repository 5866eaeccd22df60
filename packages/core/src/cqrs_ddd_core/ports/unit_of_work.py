"""The unit-of-work port: one transaction around one command."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self


class UnitOfWork(Protocol):
    """A transaction that repositories and stores join while a command runs.

    Used as ``async with uow:``. Leaving the block without :meth:`commit` (or by
    an exception) rolls back everything staged in it. After a successful commit
    every change made through it is durable; after a rollback none is.
    """

    async def __aenter__(self) -> Self:
        """Begin the transaction."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """End the transaction, rolling back whatever was not committed."""
        ...

    async def commit(self) -> None:
        """Make every staged change durable, atomically."""
        ...

    async def rollback(self) -> None:
        """Discard every staged change."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
"""Builds a fresh unit of work for each command."""
