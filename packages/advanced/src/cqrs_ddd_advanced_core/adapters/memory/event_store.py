"""An in-memory event store with the same guarantees as the SQL ones."""

from __future__ import annotations

import bisect
import itertools
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from cqrs_ddd_advanced_core.adapters.memory.workers import InMemoryWorkerStorage
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.adapters.memory import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError, DuplicateEventIdError, UnitOfWorkError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import prepare_append
from cqrs_ddd_core.wakeup import Wakeup


class InMemoryEventStore:
    """Keeps streams and the global log in memory, transactionally, for fast tests.

    Inside a command whose unit of work is an :class:`InMemoryUnitOfWork`, an
    append is staged and becomes visible to others when the unit of work
    commits (checked again then, so two racing commands cannot both win);
    outside a command it takes effect at once. The command itself sees its own
    staged appends, as a SQL transaction sees its own writes: a second append
    to the same stream follows the first, ``load_stream`` includes them, and
    re-appending a staged event is a no-op. Positions are taken when an append is made, like a
    database sequence: a rolled-back append leaves a gap. Readers of the global
    log never see past the lowest position still in flight, so an append that
    commits after a later one was visible is never skipped.
    """

    def __init__(self, *, wakeup: Wakeup | None = None) -> None:
        self._streams: dict[str, list[StoredEvent]] = {}
        self._ids: dict[str, dict[UUID, StoredEvent]] = {}
        self._log: list[StoredEvent] = []
        self._positions: list[int] = []
        self._in_flight: set[int] = set()
        self._counter = itertools.count(1)
        self.wakeup = wakeup or Wakeup()
        """Notified whenever events become visible to readers (workers wait on it)."""
        self._worker_storage: WorkerStorage | None = None
        # per unit of work in flight: each stream's staged events, in order
        self._staged: weakref.WeakKeyDictionary[
            InMemoryUnitOfWork, dict[str, list[StoredEvent]]
        ] = weakref.WeakKeyDictionary()

    def worker_storage(self) -> WorkerStorage:
        """Return the in-memory stores of workers reading these events (one set per store).

        They are woken by :attr:`wakeup`; this is where ``ProjectionWorker``
        keeps its state when it is given none.
        """
        if self._worker_storage is None:
            self._worker_storage = InMemoryWorkerStorage(self.wakeup)
        return self._worker_storage

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
    ) -> list[StoredEvent]:
        """Append ``events`` after ``expected_version``; see the ``EventStore`` port."""
        documents = prepare_append(stream_id, events, expected_version=expected_version)
        if not documents:
            return []
        scope = current_scope_or_none()
        uow = scope.uow if scope is not None else None
        if uow is not None and not isinstance(uow, InMemoryUnitOfWork):
            raise UnitOfWorkError(
                f"append to stream {stream_id!r} cannot join the command's unit of work "
                f"({type(uow).__qualname__}): the in-memory event store joins an "
                "InMemoryUnitOfWork, and would otherwise store the events apart from the command"
            )
        if uow is None:
            already = self._already_stored(stream_id, documents)
            if already is not None:
                return already
            self._check_version(stream_id, expected_version)
            stored = [self._to_stored(stream_id, document) for document in documents]
            self._apply(stream_id, stored)
            return stored
        return self._stage(uow, stream_id, documents, expected_version)

    def _stage(
        self,
        uow: InMemoryUnitOfWork,
        stream_id: str,
        documents: list[dict[str, Any]],
        expected_version: int,
    ) -> list[StoredEvent]:
        staged = self._staged.setdefault(uow, {}).setdefault(stream_id, [])
        already = self._already_stored(stream_id, documents, staged)
        if already is not None:
            return already
        committed = len(self._streams.get(stream_id, ()))
        self._check_version(stream_id, expected_version, actual=committed + len(staged))
        base_version = committed  # the stream as the command first saw it
        stored = [self._to_stored(stream_id, document) for document in documents]
        staged.extend(stored)
        positions = {event.position for event in stored}
        self._in_flight |= positions

        def check() -> None:
            # every batch of the command checks the stream as the command first saw it
            if self._already_stored(stream_id, documents) is not None:
                raise ConcurrencyError(
                    stream_id,
                    expected_version=expected_version,
                    actual_version=len(self._streams.get(stream_id, ())),
                )
            self._check_version(stream_id, base_version)

        def apply() -> None:
            self._in_flight -= positions
            self._forget_staged(uow)
            self._apply(stream_id, stored)

        def discard() -> None:
            self._in_flight -= positions
            self._forget_staged(uow)
            self.wakeup.notify()  # events held back behind these positions are visible now

        uow.stage(
            ("event_store", id(self), stream_id, stored[0].position),
            check=check,
            apply=apply,
            discard=discard,
        )
        return stored

    async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
        """Return the stream's events from ``from_version`` on, in order.

        Committed events, and inside a command also the command's own staged ones.
        """
        events = self._streams.get(stream_id, [])
        scope = current_scope_or_none()
        if scope is not None and isinstance(scope.uow, InMemoryUnitOfWork):
            staged = self._staged.get(scope.uow, {}).get(stream_id)
            if staged:
                events = [*events, *staged]
        return list(events[max(from_version, 1) - 1 :])

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Return up to ``limit`` committed events after ``after_position``, in position order."""
        start = bisect.bisect_right(self._positions, after_position)
        barrier = min(self._in_flight, default=None)
        end = len(self._log) if barrier is None else bisect.bisect_left(self._positions, barrier)
        return self._log[start : min(end, start + max(limit, 0))]

    async def count_after(self, position: int) -> int:
        """Return how many committed events a reader can see after ``position``."""
        start = bisect.bisect_right(self._positions, position)
        barrier = min(self._in_flight, default=None)
        end = len(self._log) if barrier is None else bisect.bisect_left(self._positions, barrier)
        return max(end - start, 0)

    async def current_position(self) -> int:
        """Return the highest position a reader can see (0 when there is none)."""
        barrier = min(self._in_flight, default=None)
        end = len(self._log) if barrier is None else bisect.bisect_left(self._positions, barrier)
        return self._positions[end - 1] if end else 0

    def _forget_staged(self, uow: InMemoryUnitOfWork) -> None:
        self._staged.pop(uow, None)

    def _already_stored(
        self,
        stream_id: str,
        documents: list[dict[str, Any]],
        staged: Sequence[StoredEvent] = (),
    ) -> list[StoredEvent] | None:
        known: dict[UUID, StoredEvent] = self._ids.get(stream_id, {})
        if staged:
            known = {**known, **{event.event_id: event for event in staged}}
        if not known:
            return None
        found = [known.get(UUID(document["event_id"])) for document in documents]
        present = [event for event in found if event is not None]
        if not present:
            return None
        if len(present) != len(found):
            raise DuplicateEventIdError(stream_id, [event.event_id for event in present])
        return present

    def _check_version(
        self, stream_id: str, expected_version: int, *, actual: int | None = None
    ) -> None:
        if actual is None:
            actual = len(self._streams.get(stream_id, ()))
        if actual != expected_version:
            raise ConcurrencyError(
                stream_id, expected_version=expected_version, actual_version=actual
            )

    def _to_stored(self, stream_id: str, document: dict[str, Any]) -> StoredEvent:
        return StoredEvent(
            position=next(self._counter),
            stream_id=stream_id,
            version=document["version"],
            event_type=document["event_type"],
            schema_version=document["schema_version"],
            event_id=UUID(document["event_id"]),
            occurred_at=datetime.fromisoformat(document["occurred_at"]),
            payload=document["payload"],
            aggregate_type=document["aggregate_type"],
            correlation_id=document["correlation_id"],
            causation_id=document["causation_id"],
            metadata=document["metadata"],
        )

    def _apply(self, stream_id: str, stored: list[StoredEvent]) -> None:
        self._streams.setdefault(stream_id, []).extend(stored)
        ids = self._ids.setdefault(stream_id, {})
        for event in stored:
            ids[event.event_id] = event
            index = bisect.bisect_left(self._positions, event.position)
            self._positions.insert(index, event.position)
            self._log.insert(index, event)
        self.wakeup.notify()
