"""The in-memory stores join an InMemoryUnitOfWork, and refuse any other kind.

Inside a command run by another kind of unit of work (a SQL one, say) their
writes could not commit or roll back with the command: the event store and the
snapshot repository refuse them with ``UnitOfWorkError``, as the SQL stores refuse a
unit of work they cannot join, instead of storing them at once, apart.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemorySnapshotRepository
from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_core import DomainEvent, command_scope
from cqrs_ddd_core.exceptions import UnitOfWorkError


class Noted(DomainEvent):
    note: str = ""


class ElsewhereUnitOfWork:
    """A unit of work of some other technology: it holds a transaction the memory stores lack."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None


async def test_the_in_memory_event_store_refuses_another_kind_of_unit_of_work() -> None:
    store = InMemoryEventStore()
    async with ElsewhereUnitOfWork() as uow:
        with command_scope(uow), pytest.raises(UnitOfWorkError, match="append to stream 's-1'"):
            await store.append("s-1", [Noted()], expected_version=0)
    assert await store.load_stream("s-1") == []


async def test_in_memory_snapshots_refuse_another_kind_of_unit_of_work() -> None:
    repository = InMemorySnapshotRepository()
    snapshot = Snapshot("s-1", "Order", 3, 1, {"id": "s-1"})
    async with ElsewhereUnitOfWork() as uow:
        with command_scope(uow), pytest.raises(UnitOfWorkError, match="snapshot of 's-1'"):
            await repository.save(snapshot, keep=1)
    assert await repository.latest("s-1") is None
