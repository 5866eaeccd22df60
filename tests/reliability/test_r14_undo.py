"""R14: the undo log behaves like its model, on SQLite and PostgreSQL.

A Hypothesis state machine does, undoes and redoes ``AddItemToOrder`` on one
order (``undo_test_model``), lets another writer note the order or add an
item without undo, and reloads the service from the store. After every step:

* the order's items are the model's (the lines in effect);
* undo of an entry not in effect is ``AlreadyUndoneError``; redo of one not
  undone (or superseded: a new command emptied the redo stack) is
  ``NotUndoneError``; an undo or redo after a line was removed since the entry
  (by another entry's undo that a redo did not cancel out) is
  ``UndoConflictError``, and changes nothing;
* history is never rewritten: the order's stream only grows, by the events
  the model expects (one per command, undo and redo).

CI size: 100 examples of at most 50 steps per backend; ``-m soak``: 500 of 50.
The concurrency half of R14 (two clients undoing one entry at once, 200
times; a crash before an undo commits, then a retry with the same operation
id) is in ``packages/sqlalchemy/tests/integration/test_undo_sql.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from undo_test_model import AddItemToOrder, Cart, NoteOrder, add

from cqrs_ddd_advanced_core.undo import AlreadyUndoneError, NotUndoneError, UndoConflictError
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUndoLog,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_testing import PostgresDatabase

T = TypeVar("T")
ITEMS = st.sampled_from(["Widget", "Gadget", "Gizmo", "Doohickey"])


@dataclass
class Entry:
    """The model of one undo log entry."""

    token: UUID
    item: str
    status: str = "done"
    applied_at: int = 0
    applications: int = 0
    """How many events the order had right after the entry's latest application."""


@dataclass(frozen=True)
class Happened:
    """One event of the order: its type, and which entry's which application made it."""

    event_type: str
    entry: UUID | None = None
    application: int = 0


@dataclass
class Model:
    """What the order and its undo log should be."""

    items: list[str] = field(default_factory=list)
    events: list[Happened] = field(default_factory=list)

    def removed_since(self, entry: Entry) -> bool:
        """Whether a removal stands between ``entry``'s latest application and now.

        Another entry's applications in the window cancel out when there is an
        even number of them; other writers' events always count.
        """
        window = self.events[entry.applied_at :]
        applications: dict[UUID, set[int]] = {}
        for happened in window:
            if happened.entry is not None:
                applications.setdefault(happened.entry, set()).add(happened.application)
        counted = [
            happened
            for happened in window
            if happened.entry is None or len(applications[happened.entry]) % 2 == 1
        ]
        return any(happened.event_type == "OrderLineRemoved" for happened in counted)


class Backend:
    """An engine on its own event loop (Hypothesis runs the machine synchronously)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(url)
        self.run(upgrade_schema(self.engine))

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def cart(self) -> Cart:
        engine = self.engine
        return Cart(
            SQLAlchemyEventStore(engine),
            lambda: SQLAlchemyUnitOfWork(engine),
            SQLAlchemyUndoLog(engine),
        )

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()


def machine_for(backend: Backend) -> type[RuleBasedStateMachine]:
    class UndoLogMachine(RuleBasedStateMachine):
        entries = Bundle("entries")

        def __init__(self) -> None:
            super().__init__()
            self.cart = backend.cart()
            self.order_id = f"order-{uuid4().hex[:12]}"
            self.model = Model()
            self.all: list[Entry] = []

        def _refused(self, error: type[Exception], work: Callable[[], Awaitable[Any]]) -> None:
            event(f"refused: {error.__name__}")
            events_before = self._stream()
            with pytest.raises(error):
                backend.run(work())
            assert self._stream() == events_before  # nothing written

        def _stream(self) -> list[str]:
            stored = backend.run(self.cart.event_store.load_stream(self.order_id))
            return [event.event_type for event in stored]

        @rule(target=entries, item=ITEMS)
        def do(self, item: str) -> Entry:
            token = backend.run(self.cart.undo_service.execute(add(item, order_id=self.order_id)))
            for earlier in self.all:
                if earlier.status == "undone":
                    earlier.status = "superseded"
            self.model.items.append(item)
            self.model.events.append(Happened("ItemAddedToOrder", token, 0))
            entry = Entry(token, item, applied_at=len(self.model.events))
            self.all.append(entry)
            return entry

        @rule(entry=entries)
        def undo(self, entry: Entry) -> None:
            work = lambda: self.cart.undo_service.undo(entry.token)  # noqa: E731
            if entry.status not in ("done", "redone"):
                self._refused(AlreadyUndoneError, work)
            elif self.model.removed_since(entry):
                self._refused(UndoConflictError, work)
            else:
                backend.run(work())
                event("undone")
                entry.applications += 1
                self.model.items.remove(entry.item)
                self.model.events.append(
                    Happened("OrderLineRemoved", entry.token, entry.applications)
                )
                entry.status = "undone"
                entry.applied_at = len(self.model.events)

        @rule(entry=entries)
        def redo(self, entry: Entry) -> None:
            work = lambda: self.cart.undo_service.redo(entry.token)  # noqa: E731
            if entry.status != "undone":
                self._refused(NotUndoneError, work)
            elif self.model.removed_since(entry):
                self._refused(UndoConflictError, work)
            else:
                backend.run(work())
                event("redone")
                entry.applications += 1
                self.model.items.append(entry.item)
                self.model.events.append(
                    Happened("ItemAddedToOrder", entry.token, entry.applications)
                )
                entry.status = "redone"
                entry.applied_at = len(self.model.events)

        @rule(note=st.sampled_from(["gift wrap", "urgent", "call first"]))
        def another_writer_notes(self, note: str) -> None:
            backend.run(self.cart.mediator.send(NoteOrder(order_id=self.order_id, note=note)))
            self.model.events.append(Happened("OrderNoted"))

        @rule(item=ITEMS)
        def another_writer_adds(self, item: str) -> None:
            command = AddItemToOrder(order_id=self.order_id, item=item, price=add(item).price)
            backend.run(self.cart.mediator.send(command))  # not through the undo service
            self.model.items.append(item)
            self.model.events.append(Happened("ItemAddedToOrder"))

        @rule()
        def reload_from_store(self) -> None:
            self.cart = backend.cart()

        @invariant()
        def the_order_is_the_model(self) -> None:
            assert backend.run(self.cart.items(self.order_id)) == sorted(self.model.items)

        @invariant()
        def history_is_only_appended_to(self) -> None:
            assert self._stream() == [happened.event_type for happened in self.model.events]

    return UndoLogMachine


def run_machine(url: str, *, examples: int, steps: int) -> None:
    backend = Backend(url)
    try:
        run_state_machine_as_test(
            machine_for(backend),
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
    finally:
        backend.close()


CI = {"examples": 100, "steps": 50}
SOAK = {"examples": 500, "steps": 50}


async def test_r14_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r14.db'}"
    await asyncio.to_thread(run_machine, url, **CI)


async def test_r14_on_postgresql(postgres_database: PostgresDatabase) -> None:
    await asyncio.to_thread(run_machine, postgres_database.sqlalchemy_url, **CI)


@pytest.mark.soak
async def test_r14_soak_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r14.db'}"
    await asyncio.to_thread(run_machine, url, **SOAK)


@pytest.mark.soak
async def test_r14_soak_on_postgresql(postgres_database: PostgresDatabase) -> None:
    await asyncio.to_thread(run_machine, postgres_database.sqlalchemy_url, **SOAK)
