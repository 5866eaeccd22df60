"""R6: poison events and unknown types are quarantined, and the worker goes on.

A worker runs (in this process) while 1,000 good events are appended interleaved
with 100 bad ones (soak: 10,000 and 1,000), on PostgreSQL and on SQLite. The bad
ones come in five kinds, 20 % each:

- ``Audited``: a type the projector handles by name whose class is not registered;
- ``Tagged`` with a payload that fails validation (``amount="#12"``);
- ``Moved`` stored at schema version 1, whose upcaster raises;
- ``Withdrawn`` over the limit, whose handler raises every time;
- ``Flaky``, whose handler fails on its first two tries only (transient).

The worker must never stop; every good event and every transient one is applied
exactly once (the read model equals the in-order fold of exactly those events); the
dead-letter table holds exactly the deterministic failures, each with position,
stream, version, type, error class, message, attempts and first/last seen; the
checkpoint reaches the head. Policy (Marten's continuous mode, skip and continue):
a stream's events after a quarantined one are applied, not parked. After deploying
the fix (class registered, payload made readable, upcaster and handler fixed),
replaying the dead letters applies them all and empties the table. A rebuild with
the unfixed code fails fast on the first bad event, naming event and stream, and
applies nothing after it; a rebuild with the fixed code equals the full fold.

A replay called right after ``start()``, while the worker's own loop takes the
lease, borrows that lease and applies the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from projection_support import (
    Applied,
    BalanceProjector,
    LeaseRecordingStorage,
    ProjectionProbe,
    balance_table,
    create_tables,
    expected_rows,
)
from pydantic import field_validator
from scenario_support import failure_note
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.domain.exceptions import UpcastingError
from cqrs_ddd_advanced_core.projections import (
    DeadLetter,
    ProjectionContext,
    ProjectionRebuildError,
    ProjectionWorker,
    ProjectorRegistry,
)
from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_advanced_core.upcasting.upcaster import EventUpcaster
from cqrs_ddd_core import DomainEvent, EventTypeRegistry
from cqrs_ddd_core.exceptions import EventDeserializationError, UnknownEventTypeError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore

pytest_plugins = ["sqlalchemy_fixtures"]

PROJECTION = "balances"
WITHDRAWAL_LIMIT = 10_000
TRANSIENT_FAILURES = 2


class Deposited(DomainEvent):
    amount: int


class Audited(DomainEvent):
    """Handled by name; its class is registered only once the fix is deployed."""

    amount: int


class Tagged(DomainEvent):
    """The reader's class: ``amount`` must be a number (``"12"`` passes, ``"#12"`` fails)."""

    amount: int


class TaggedAsWritten(DomainEvent):
    """How a sloppy writer stored ``Tagged``: the amount as free text."""

    event_type: ClassVar[str] = "Tagged"
    amount: str


class TaggedFixed(DomainEvent):
    """The fix: the reader's class accepts the ``#`` the writer put in front."""

    event_type: ClassVar[str] = "Tagged"
    amount: int

    @field_validator("amount", mode="before")
    @classmethod
    def _strip_hash(cls, value: object) -> object:
        return value.lstrip("#") if isinstance(value, str) else value


class Moved(DomainEvent):
    """Schema version 2: an amount in whole units."""

    schema_version: ClassVar[int] = 2
    amount: int


class MovedV1(DomainEvent):
    """Schema version 1, as old writers stored it: cents."""

    event_type: ClassVar[str] = "Moved"
    cents: int


class BrokenMovedUpcaster(EventUpcaster):
    event_type: ClassVar[str] = "Moved"
    source_version: ClassVar[int] = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"amount": data["amount_in_cents"] // 100}  # the bug: a field that never existed


class MovedUpcaster(EventUpcaster):
    event_type: ClassVar[str] = "Moved"
    source_version: ClassVar[int] = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"amount": data["cents"] // 100}


class Withdrawn(DomainEvent):
    amount: int


class Flaky(DomainEvent):
    amount: int


class WithdrawalRefusedError(ValueError):
    """The unfixed handler's deterministic failure."""


class TransientHandlerError(RuntimeError):
    """The flaky handler's failure on its first tries."""


class PoisonAwareProjector(BalanceProjector):
    """`BalanceProjector` plus handlers, by name, for the event types of this scenario.

    ``fixed=False`` is the unfixed code: withdrawals over the limit raise. ``calls``
    counts the ``Flaky`` handler's calls per event id (shared between deployments,
    like the outside system that was briefly down).
    """

    handles: ClassVar[dict[Any, str]] = {
        "Audited": "audited",
        "Tagged": "tagged",
        "Moved": "moved",
        "Withdrawn": "withdrawn",
        "Flaky": "flaky",
    }

    def __init__(self, engine: AsyncEngine, *, fixed: bool, calls: Counter[str]) -> None:
        super().__init__(PROJECTION, engine, table=balance_table(PROJECTION), through_store=True)
        self.fixed = fixed
        self.calls = calls

    async def audited(self, event: Audited, context: ProjectionContext) -> None:
        await self.apply_amount(event, event.amount, context)

    async def tagged(self, event: Tagged, context: ProjectionContext) -> None:
        await self.apply_amount(event, event.amount, context)

    async def moved(self, event: Moved, context: ProjectionContext) -> None:
        await self.apply_amount(event, event.amount, context)

    async def withdrawn(self, event: Withdrawn, context: ProjectionContext) -> None:
        if not self.fixed and event.amount >= WITHDRAWAL_LIMIT:
            raise WithdrawalRefusedError(f"withdrawal of {event.amount} is over the limit")
        await self.apply_amount(event, event.amount, context)

    async def flaky(self, event: Flaky, context: ProjectionContext) -> None:
        key = str(event.event_id)
        self.calls[key] += 1
        if self.calls[key] <= TRANSIENT_FAILURES:
            raise TransientHandlerError(f"try {self.calls[key]} of {key} failed")
        await self.apply_amount(event, event.amount, context)


def make_worker(engine: AsyncEngine, *, fixed: bool, calls: Counter[str]) -> ProjectionWorker:
    """The unfixed deployment, or the fixed one (``fixed=True``)."""
    if fixed:
        event_registry = EventTypeRegistry(
            [Deposited, Audited, TaggedFixed, Moved, Withdrawn, Flaky]
        )
        upcasters = UpcasterRegistry([MovedUpcaster()])
    else:
        event_registry = EventTypeRegistry([Deposited, Tagged, Moved, Withdrawn, Flaky])
        upcasters = UpcasterRegistry([BrokenMovedUpcaster()])
    projector = PoisonAwareProjector(engine, fixed=fixed, calls=calls)
    return ProjectionWorker(
        ProjectorRegistry([projector], event_registry=event_registry),
        SQLAlchemyEventStore(engine),
        batch_size=100,
        upcaster_registry=upcasters,
        poll_interval=0.2,
        max_attempts=3,
        retry_backoff=0.001,
        max_backoff=0.01,
    )


GOOD_KINDS = ("deposited", "tagged", "moved", "withdrawn")
BAD_KINDS = ("unregistered", "invalid", "upcaster", "handler", "transient")
DETERMINISTIC = ("unregistered", "invalid", "upcaster", "handler")
ERROR_CLASSES = {
    "unregistered": UnknownEventTypeError,
    "invalid": EventDeserializationError,
    "upcaster": UpcastingError,
    "handler": WithdrawalRefusedError,
}
TYPES = {
    "unregistered": "Audited",
    "invalid": "Tagged",
    "upcaster": "Moved",
    "handler": "Withdrawn",
    "transient": "Flaky",
}


@dataclass(frozen=True, slots=True)
class Planned:
    """An event to append: its kind and the amount the fixed code folds for it."""

    kind: str
    event: DomainEvent
    amount: int


def plan_event(kind: str, rng: random.Random) -> Planned:
    amount = rng.randint(1, 999)
    event: DomainEvent
    if kind == "deposited":
        event = Deposited(amount=amount)
    elif kind == "tagged":
        event = TaggedAsWritten(amount=str(amount))
    elif kind == "moved":
        event = Moved(amount=amount)
    elif kind == "withdrawn":
        event = Withdrawn(amount=amount)
    elif kind == "unregistered":
        event = Audited(amount=amount)
    elif kind == "invalid":
        event = TaggedAsWritten(amount=f"#{amount}")
    elif kind == "upcaster":
        event = MovedV1(cents=amount * 100 + rng.randint(0, 99))
    elif kind == "handler":
        amount += WITHDRAWAL_LIMIT
        event = Withdrawn(amount=amount)
    else:
        event = Flaky(amount=amount)
    return Planned(kind, event, amount)


@dataclass(frozen=True, slots=True)
class Load:
    good: int
    bad: int
    streams: int


CI = Load(good=1_000, bad=100, streams=40)
SOAK = Load(good=10_000, bad=1_000, streams=400)


async def append_interleaved(
    store: SQLAlchemyEventStore, load: Load, rng: random.Random
) -> dict[str, Planned]:
    """Append good and bad events shuffled over the streams; return the plan by event id."""
    kinds = [GOOD_KINDS[n % len(GOOD_KINDS)] for n in range(load.good)]
    kinds += [BAD_KINDS[n % len(BAD_KINDS)] for n in range(load.bad)]
    rng.shuffle(kinds)
    queues: dict[str, list[Planned]] = {f"account-{n:03d}": [] for n in range(load.streams)}
    for kind in kinds:
        queues[rng.choice(sorted(queues))].append(plan_event(kind, rng))
    planned: dict[str, Planned] = {}
    versions = dict.fromkeys(queues, 0)
    for _ in range(len(kinds)):  # bounded: each append takes at least one event
        pending = [stream for stream, queue in queues.items() if queue]
        if not pending:
            break
        stream = rng.choice(pending)
        size = min(rng.randint(1, 4), len(queues[stream]))
        batch, queues[stream] = queues[stream][:size], queues[stream][size:]
        await store.append(stream, [p.event for p in batch], expected_version=versions[stream])
        versions[stream] += size
        planned.update((str(p.event.event_id), p) for p in batch)
    return planned


APPLICABLE = frozenset({*GOOD_KINDS, "transient"})
"""What the unfixed code applies: the good events and the transient failures."""


@dataclass
class Outcome:
    """A load appended and projected by the unfixed deployment: what to check it against."""

    engine: AsyncEngine
    load: Load
    note: str
    planned: dict[str, Planned]
    stored: list[StoredEvent]
    calls: Counter[str]

    @property
    def table(self) -> Table:
        return balance_table(PROJECTION)

    def kind(self, event: StoredEvent) -> str:
        return self.planned[str(event.event_id)].kind

    @property
    def bad(self) -> list[StoredEvent]:
        """The deterministic failures, in position order."""
        return [event for event in self.stored if self.kind(event) in DETERMINISTIC]

    def folded(
        self, kinds: Iterable[str], events: list[StoredEvent] | None = None
    ) -> dict[str, dict[str, Any]]:
        """The rows after applying, in position order, the events of ``kinds``."""
        wanted = set(kinds)
        return expected_rows(
            Applied(e.stream_id, e.version, e.position, self.planned[str(e.event_id)].amount)
            for e in (self.stored if events is None else events)
            if self.kind(e) in wanted
        )

    async def rows(self) -> dict[str, dict[str, Any]]:
        rows = await ProjectionProbe(self.engine).rows(self.table)
        return {row["stream_id"]: row for row in rows}


def qualified(error_class: type[BaseException]) -> str:
    return f"{error_class.__module__}.{error_class.__qualname__}"


def check_letters(outcome: Outcome, letters: list[DeadLetter]) -> None:
    """Exactly the deterministic failures are quarantined, each fully described."""
    note = outcome.note
    bad = outcome.bad
    assert [letter.position for letter in letters] == [event.position for event in bad], note
    assert len(bad) == outcome.load.bad * len(DETERMINISTIC) // len(BAD_KINDS), note
    for letter, event in zip(letters, bad, strict=True):
        kind = outcome.kind(event)
        assert letter.projection == PROJECTION
        assert (letter.stream_id, letter.version) == (event.stream_id, event.version), note
        assert (letter.event_type, letter.event_id) == (TYPES[kind], event.event_id), note
        assert letter.error_class == qualified(ERROR_CLASSES[kind]), f"{letter} {note}"
        assert letter.error_message, note
        assert letter.attempts == (3 if kind == "handler" else 1), f"{letter} {note}"
        assert letter.first_seen_at <= letter.last_seen_at, note
        if kind == "handler":
            assert letter.first_seen_at < letter.last_seen_at, f"retried: {letter} {note}"


def check_streams_went_on(
    outcome: Outcome, letters: list[DeadLetter], rows: dict[str, dict[str, Any]]
) -> None:
    """Skip and continue: a stream's events after a quarantined one were applied, not parked."""
    went_on = [
        event
        for event in outcome.stored
        if outcome.kind(event) in APPLICABLE
        and any(
            letter.stream_id == event.stream_id and letter.position < event.position
            for letter in letters
        )
    ]
    streams = {event.stream_id for event in went_on}
    assert len(streams) >= min(10, outcome.load.streams // 4), outcome.note
    for event in went_on:
        assert rows[event.stream_id]["last_version"] >= event.version, (
            f"{event.stream_id} parked after its quarantined event {outcome.note}"
        )


async def project_with_unfixed_code(engine: AsyncEngine, load: Load, seed: int) -> Outcome:
    """Run the unfixed deployment while the load is appended; check what it made of it."""
    note = failure_note(seed)
    await create_tables(engine, balance_table(PROJECTION))
    store = SQLAlchemyEventStore(engine)
    calls: Counter[str] = Counter()
    worker = make_worker(engine, fixed=False, calls=calls)
    await worker.start()
    try:
        async with asyncio.timeout(300):
            planned = await append_interleaved(store, load, random.Random(seed))
            await worker.wait_until_caught_up(within=120)
        (status,) = await worker.status(PROJECTION)
        letters = await worker.dead_letters(PROJECTION)
    finally:
        await worker.stop()
    stored = await store.read_all(limit=len(planned) + 1)
    outcome = Outcome(engine, load, note, planned, stored, calls)
    assert len(stored) == load.good + load.bad, note
    # the worker never stopped and its checkpoint is the head
    assert status.state == "running", f"{status} {note}"
    assert status.checkpoint == status.head_position == stored[-1].position, f"{status} {note}"
    assert status.dead_letters == len(letters), note
    # the good and transient events were applied exactly once, in order
    rows = await outcome.rows()
    assert rows == outcome.folded(APPLICABLE), note
    flaky = [key for key, p in planned.items() if p.kind == "transient"]
    assert flaky, note
    assert all(calls[key] == TRANSIENT_FAILURES + 1 for key in flaky), note
    check_letters(outcome, letters)
    check_streams_went_on(outcome, letters, rows)
    return outcome


async def replay_with_the_fix(outcome: Outcome) -> None:
    """Deploy the fix and replay the dead letters: all applied, the table emptied."""
    note = outcome.note
    fixed = make_worker(outcome.engine, fixed=True, calls=outcome.calls)
    await fixed.start()
    try:
        await fixed.wait_until_caught_up(within=60)
        replay = await fixed.replay_dead_letters(PROJECTION)
        remaining = await fixed.dead_letters(PROJECTION)
        (after_replay,) = await fixed.status(PROJECTION)
    finally:
        await fixed.stop()
    # every letter applied, the table is empty, the checkpoint did not move
    assert replay.applied == [event.position for event in outcome.bad], note
    assert replay.failed == [], note
    assert remaining == [], note
    assert after_replay.checkpoint == outcome.stored[-1].position, note
    # and every event of every kind now counts once (applied out of order: counts, not digest)
    everything = outcome.folded({*GOOD_KINDS, *BAD_KINDS})
    replayed = await outcome.rows()
    assert {s: (r["applied_count"], r["total"]) for s, r in replayed.items()} == {
        s: (r["applied_count"], r["total"]) for s, r in everything.items()
    }, note


async def rebuild_unfixed_then_fixed(outcome: Outcome) -> None:
    """Rebuild with the unfixed code (fails fast), then with the fixed one (complete)."""
    note = outcome.note
    unfixed = make_worker(outcome.engine, fixed=False, calls=outcome.calls)
    with pytest.raises(ProjectionRebuildError) as failed:
        await unfixed.rebuild(PROJECTION, within=120)
    # it failed fast on the first bad event, naming it and its stream
    first = outcome.bad[0]
    error = failed.value
    assert (error.position, error.stream_id, error.version) == (
        first.position,
        first.stream_id,
        first.version,
    ), note
    assert error.event_type == TYPES[outcome.kind(first)], note
    assert first.stream_id in str(error), note
    assert TYPES[outcome.kind(first)] in str(error), note
    # and it is halted right before that event, everything before it applied, nothing after
    (halted,) = await unfixed.status(PROJECTION)
    assert halted.state == "halted", f"{halted} {note}"
    before_first = [event for event in outcome.stored if event.position < first.position]
    assert halted.checkpoint == (before_first[-1].position if before_first else 0), note
    assert await outcome.rows() == outcome.folded(APPLICABLE, before_first), note
    assert await unfixed.dead_letters(PROJECTION) == [], note
    # the fixed code's rebuild is complete, in position order, with nothing quarantined
    fixed = make_worker(outcome.engine, fixed=True, calls=outcome.calls)
    rebuilt = await fixed.rebuild(PROJECTION, within=120)
    assert rebuilt.checkpoint == outcome.stored[-1].position, f"{rebuilt} {note}"
    assert rebuilt.dead_letters == 0, note
    assert rebuilt.state != "halted", note
    assert await outcome.rows() == outcome.folded({*GOOD_KINDS, *BAD_KINDS}), note


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_bad_events_are_quarantined_the_rest_applied_once_and_the_fix_replays_them(
    engine: AsyncEngine, seed: int, load: Load
) -> None:
    # given: the unfixed deployment runs while good and bad events are appended
    # when: it has caught up
    # then: it never stopped, quarantined exactly the deterministic failures, applied
    # everything else once, and went on with the streams of quarantined events
    outcome = await project_with_unfixed_code(engine, load, seed)
    # when: the fix is deployed; then: replaying the dead letters applies them all
    await replay_with_the_fix(outcome)
    # when: the unfixed code rebuilds; then: it fails fast naming the first bad event,
    # and the fixed code's rebuild equals the in-order fold of every event
    await rebuild_unfixed_then_fixed(outcome)


GATE_SECONDS = 5.0


class LoopFirstStorage(LeaseRecordingStorage):
    """Orders a replay called right after ``start()`` and the worker's loop, as they race.

    Once ``armed``: the loop's first acquire waits until the replay has read its dead
    letters (it then looks for the loop's lease and finds none), and the replay's own
    acquire waits until the loop holds the lease: the interleaving a replay right
    after ``start()`` meets when the loop's acquire (four round trips) ends first.
    """

    def __init__(self, inner: Any, worker_id: str) -> None:
        super().__init__(inner)
        self.armed = False
        self._worker_id = worker_id
        self._replay_read = asyncio.Event()
        self._loop_holds = asyncio.Event()

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        letters: list[DeadLetter] = await self._inner.dead_letters(projection)
        if self.armed:
            self._replay_read.set()
        return letters

    async def acquire(
        self, projection: str, owner: str, ttl: float, *, kind: str | None = None
    ) -> Any:
        # each side waits a few seconds at most: a replay that no longer works this way
        # must not hang the test
        if owner == self._worker_id:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replay_read.wait(), GATE_SECONDS)
            lease = await self._inner.acquire(projection, owner, ttl, kind=kind)
            if lease is not None:
                self._loop_holds.set()
            return lease
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop_holds.wait(), GATE_SECONDS)
        return await self._inner.acquire(projection, owner, ttl, kind=kind)


async def test_dead_letters_replayed_right_after_start_are_applied(pg_engine: AsyncEngine) -> None:
    # given: one dead letter, left by the unfixed code
    await create_tables(pg_engine, balance_table(PROJECTION))
    store = SQLAlchemyEventStore(pg_engine)
    await store.append(
        "account-000",
        [Deposited(amount=1), Withdrawn(amount=WITHDRAWAL_LIMIT + 1), Deposited(amount=2)],
        expected_version=0,
    )
    calls: Counter[str] = Counter()
    await make_worker(pg_engine, fixed=False, calls=calls).catch_up(PROJECTION)
    fixed = make_worker(pg_engine, fixed=True, calls=calls)
    [letter] = await fixed.dead_letters(PROJECTION)
    storage = LoopFirstStorage(fixed.storage, fixed.worker_id)
    fixed.storage = storage
    storage.armed = True
    # when: the fixed code starts and its operator replays the dead letters at once
    await fixed.start()
    try:
        async with asyncio.timeout(60):
            replay = await fixed.replay_dead_letters(PROJECTION)
    finally:
        await fixed.stop()
    # then: the letter is applied
    assert replay.applied == [letter.position]
    assert await fixed.dead_letters(PROJECTION) == []
