"""(h) Projection catch-up into a SQL read model, both sides, and where our worker's time goes.

Each side's events are appended first (not timed): ``plan.projection_events``
events over ``plan.projection_streams`` accounts (one ``OpenAccount`` /
``open_account`` command per account, opening it with the rest as deposits),
in a database of the section's own, so the catch-up reads exactly those.
Then each sample empties the read model and the checkpoint (not timed) and
times a catch-up from position 0 to the head.

The read model is one row per account, written with the same upsert on both
sides: ``INSERT INTO <table> (id, events, last_position, last_amount) VALUES
(...) ON CONFLICT (id) DO UPDATE SET events = excluded.events, last_position =
excluded.last_position, last_amount = excluded.last_amount``.

* **Ours**: a ``Projector`` whose two handlers call
  ``SQLAlchemyReadModelStore.upsert(context.connection, row)`` (queued, sent
  per batch as one ``executemany``), run by
  ``ProjectionWorker(...).catch_up()`` with ``batch_size`` 100 and 500
  (``SQLAlchemyWorkerStorage``: one fenced transaction per batch, checkpoint
  in it).
* **Theirs**: the library's ``Projection`` with a materialised view that is a
  ``TrackingRecorder`` subclass (``PostgresTrackingRecorder`` /
  ``SQLiteTrackingRecorder``) writing the read-model row and the tracking
  record in one transaction, as the library's docs and tests do. It is driven
  by the loop its ``ApplicationSubscription`` runs (pages of 500 from
  ``select_notifications``, ``mapper.to_domain_event``, ``process_event``) on
  the caller's thread; on PostgreSQL also by its ``ProjectionRunner`` (threads,
  LISTEN/NOTIFY). eventsourcing 9.5.6's SQLite recorder has no ``subscribe``, so
  the runner cannot run there.

Our worker's overhead is measured on every sample: inside a batch ``upsert``
only queues its row, and the batch sends the queue as ``executemany`` runs, so
the read-model SQL is the time the driver spends executing those runs (between
SQLAlchemy's cursor events: the round trip, and aiosqlite's thread hop); the
rest of the catch-up is the worker's. After the
samples one more catch-up runs with every part of the worker timed (read,
decode, batch open, batch close), and one under cProfile.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import statistics
import sys
import threading
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import asyncpg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks import theirs as their_domain
from benchmarks.databases import fresh_postgres, fresh_sqlite
from benchmarks.ours import AccountOpened, MoneyDeposited, OurBank
from benchmarks.plan import Plan
from benchmarks.report import Report, Row
from benchmarks.theirs import TheirBank
from benchmarks.timing import Sample, Stopwatch, Workload, compare
from cqrs_ddd_advanced_core.projections import (
    ProjectionContext,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    projects,
)
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyReadModelStore

PAGE = 500
"""Their subscription's page size (``ListenNotifySubscription._select_limit``)."""

PROFILE_TOP = 15

_metadata = MetaData()


def _activity_table(name: str) -> Table:
    return Table(
        name,
        _metadata,
        Column("id", String(64), primary_key=True),
        Column("events", Integer, nullable=False),
        Column("last_position", BigInteger, nullable=False),
        Column("last_amount", BigInteger, nullable=False),
    )


OUR_TABLE = _activity_table("bench_activity_ours")
THEIR_TABLE = _activity_table("bench_activity_theirs")

_UPSERT = (
    "INSERT INTO bench_activity_theirs (id, events, last_position, last_amount) "
    "VALUES ({id}, {events}, {last_position}, {last_amount}) "
    "ON CONFLICT (id) DO UPDATE SET events = excluded.events, "
    "last_position = excluded.last_position, last_amount = excluded.last_amount"
)
PG_UPSERT = _UPSERT.format(
    id="%(id)s",
    events="%(events)s",
    last_position="%(last_position)s",
    last_amount="%(last_amount)s",
)
SQLITE_UPSERT = _UPSERT.format(
    id=":id", events=":events", last_position=":last_position", last_amount=":last_amount"
)
CLEAR_THEIRS = "DELETE FROM bench_activity_theirs"
TOTALS_THEIRS = "SELECT count(*) AS n, sum(events) AS total FROM bench_activity_theirs"


# ---------------------------------------------------------------- ours


class OurActivityProjector(Projector):
    """One row per account: its event count, last position and last amount."""

    def __init__(self, read_model: SQLAlchemyReadModelStore, name: str) -> None:
        self.read_model = read_model
        self._name = name

    @property
    def name(self) -> str:
        """The projection's name (one per batch size, so each keeps its own checkpoint)."""
        return self._name

    @projects(AccountOpened)
    async def opened(self, event: AccountOpened, context: ProjectionContext) -> None:
        """An account appears with its first event."""
        await self._write(context, 0)

    @projects(MoneyDeposited)
    async def deposited(self, event: MoneyDeposited, context: ProjectionContext) -> None:
        """A deposit: one more event, the amount last paid in."""
        await self._write(context, event.amount)

    async def _write(self, context: ProjectionContext, amount: int) -> None:
        row = {
            "id": context.stream_id,
            "events": context.version,
            "last_position": context.position,
            "last_amount": amount,
        }
        await self.read_model.upsert(context.connection, row)


class ReadModelSqlTimer:
    """Wall-clock seconds the driver spends executing the read model's statements.

    Timed between SQLAlchemy's ``before_cursor_execute`` and
    ``after_cursor_execute`` events of the ``INSERT`` into our table: the
    upserts a batch holds back go out as ``executemany`` runs, each timed
    whole (the driver's round trip and, on SQLite, aiosqlite's thread hop).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.seconds = 0.0
        self._sync = engine.sync_engine
        self._started = 0.0

    def _before(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(f"INSERT INTO {OUR_TABLE.name}"):
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> ReadModelSqlTimer:
        event.listen(self._sync, "before_cursor_execute", self._before)
        event.listen(self._sync, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._sync, "before_cursor_execute", self._before)
        event.remove(self._sync, "after_cursor_execute", self._after)


@dataclass
class Clock:
    """Wall-clock seconds per part of a catch-up, and the SQL statements it sent."""

    parts: dict[str, float] = field(default_factory=dict)
    statements: Counter[str] = field(default_factory=Counter)

    def add(self, part: str, seconds: float) -> None:
        """Add ``seconds`` to ``part``."""
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def listen(self, engine: AsyncEngine) -> Callable[[], None]:
        """Count ``engine``'s statements, commits and pool resets; return undo."""
        sync = engine.sync_engine

        def after(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.statements[_statement_kind(statement)] += 1

        def commit(_connection: Any) -> None:
            self.statements["COMMIT"] += 1

        def reset(*_: Any) -> None:
            self.statements["pool reset on return (rollback)"] += 1

        listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (sync, "after_cursor_execute", after),
            (sync, "commit", commit),
            (sync.pool, "reset", reset),
        ]
        for target, name, function in listeners:
            event.listen(target, name, function)

        def undo() -> None:
            for target, name, function in listeners:
                event.remove(target, name, function)

        return undo


def _statement_kind(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper() if words else "?"
    upper = [word.upper() for word in words]
    if verb == "INSERT" and len(words) > 2:
        return f"INSERT {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    if verb == "SELECT" and "FROM" in upper:
        return f"SELECT {words[upper.index('FROM') + 1]}"
    return " ".join(words[:2])


class _TimedEventStore:
    """The event store with ``read_all`` timed (everything else passed through)."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        started = time.perf_counter()
        found: list[StoredEvent] = await self._inner.read_all(
            after_position=after_position, limit=limit
        )
        self._clock.add(
            "read_all: SELECT, fetch, rows to StoredEvent", time.perf_counter() - started
        )
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TimedStorage:
    """The projection storage with the batch's opening and closing timed."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    @contextlib.asynccontextmanager
    async def batch(self, lease: Any, ttl: float) -> AsyncIterator[Any]:
        started = time.perf_counter()
        async with self._inner.batch(lease, ttl) as batch:
            opened = time.perf_counter()
            self._clock.add("batch open: connect, BEGIN, fence UPDATE", opened - started)
            yield batch
            closing = time.perf_counter()
        self._clock.add(
            "batch close: checkpoint UPDATE, COMMIT, release", time.perf_counter() - closing
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TimedDecoder:
    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    def decode(self, stored: StoredEvent) -> Any:
        started = time.perf_counter()
        event = self._inner.decode(stored)
        self._clock.add("decode: EventDecoder.decode", time.perf_counter() - started)
        return event


class OurProjection:
    """Our side on one database: the bank that appended, the read model, one worker per batch."""

    def __init__(self, bank: OurBank, batch_sizes: tuple[int, ...]) -> None:
        self.bank = bank
        self.read_model = SQLAlchemyReadModelStore(OUR_TABLE, bank.engine)
        self.storage = bank.event_store.worker_storage()
        self.projectors = {
            size: OurActivityProjector(self.read_model, f"activity_batch_{size}")
            for size in batch_sizes
        }
        self.workers = {
            size: ProjectionWorker(
                ProjectorRegistry([projector]), bank.event_store, batch_size=size
            )
            for size, projector in self.projectors.items()
        }
        self.sql_shares: dict[int, list[float]] = {size: [] for size in batch_sizes}
        self.cpu_shares: dict[int, list[float]] = {size: [] for size in batch_sizes}
        """Per sample: CPU time of the event loop's thread over the wall clock."""

    async def reset(self, size: int) -> None:
        """Empty the read model and put the projection's checkpoint back to 0 (not timed)."""
        projector = self.projectors[size]
        await self.storage.reset(projector.name, projector.reset)

    async def catch_up(self, size: int, head: int) -> Sample:
        """Time one catch-up from 0 to ``head``; keep the read-model SQL's share."""
        await self.reset(size)
        with ReadModelSqlTimer(self.bank.engine) as sql, Stopwatch() as watch:
            cpu = time.thread_time()
            statuses = await self.workers[size].catch_up()
            cpu = time.thread_time() - cpu
        if statuses[0].checkpoint != head or statuses[0].dead_letters:
            raise RuntimeError(f"our catch-up stopped short: {statuses[0]}")
        self.sql_shares[size].append(sql.seconds / watch.seconds)
        self.cpu_shares[size].append(cpu / watch.seconds)
        return Sample(head, watch.seconds)

    async def breakdown(self, size: int, head: int) -> tuple[float, Clock]:
        """One catch-up with each part of the worker timed; return its seconds and the parts."""
        await self.reset(size)
        clock = Clock()
        projector = OurActivityProjector(self.read_model, self.projectors[size].name)
        worker = ProjectionWorker(
            ProjectorRegistry([projector]),
            _TimedEventStore(self.bank.event_store, clock),
            batch_size=size,
            storage=_TimedStorage(self.storage, clock),
        )
        worker.decoder = _TimedDecoder(worker.decoder, clock)  # type: ignore[assignment]
        undo = clock.listen(self.bank.engine)
        try:
            with ReadModelSqlTimer(self.bank.engine) as sql, Stopwatch() as watch:
                await worker.catch_up()
        finally:
            undo()
        clock.add("read-model SQL: the batches' executemany upserts", sql.seconds)
        return watch.seconds, clock

    async def profiled(self, size: int) -> tuple[str, dict[str, float]]:
        """One catch-up under cProfile (event loop thread only).

        Return the top functions, and the share of the profiled time spent in
        each kind of code (see :func:`_kind_of_code`).
        """
        await self.reset(size)
        profiler = cProfile.Profile()
        profiler.enable()
        await self.workers[size].catch_up()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(PROFILE_TOP)
        own: Counter[str] = Counter()
        for (path, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
            own[_kind_of_code(path, function)] += row[2]  # own time (tottime)
        total = sum(own.values()) or 1.0
        return out.getvalue(), {kind: seconds / total for kind, seconds in own.most_common()}

    async def totals(self) -> tuple[int, int]:
        """Return the read model's row count and the sum of its ``events`` column."""
        async with self.bank.engine.connect() as connection:
            row = (
                await connection.execute(select(func.count(), func.sum(OUR_TABLE.c.events)))
            ).one()
        return int(row[0]), int(row[1] or 0)


_KINDS_OF_CODE = (
    ("cqrs_ddd_advanced_core/projections/", "the worker (cqrs_ddd_advanced_core.projections)"),
    ("cqrs_ddd_persistence_sqlalchemy/", "our SQL layer (event store, projection storage)"),
    ("cqrs_ddd_advanced_core/upcasting/", "decoding events (decoder, registry, pydantic, json)"),
    ("cqrs_ddd_core/", "decoding events (decoder, registry, pydantic, json)"),
    ("pydantic", "decoding events (decoder, registry, pydantic, json)"),
    ("json", "decoding events (decoder, registry, pydantic, json)"),
    ("benchmarks/", "the benchmark's projector (its two handlers)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg", "drivers (asyncpg, aiosqlite, sqlite3, sockets)"),
    ("aiosqlite", "drivers (asyncpg, aiosqlite, sqlite3, sockets)"),
)


def _kind_of_code(path: str, function: str) -> str:
    """Name the kind of code a profiled function belongs to."""
    if "poll" in function and "epoll" in function:
        return "waiting for the database (the event loop's poll)"
    where = f"{path} {function}"  # built-ins have no path: their name tells
    for marker, kind in _KINDS_OF_CODE:
        if marker in where:
            return kind
    if "sqlite3" in function or "_socket" in function or "_queue" in function:
        return "drivers (asyncpg, aiosqlite, sqlite3, sockets)"
    return "asyncio, greenlet, other"


# ---------------------------------------------------------------- theirs


class ActivityView(TrackingRecorder):
    """Their materialised view: the read-model row and the tracking record, one transaction."""

    @abstractmethod
    def record(self, account_id: str, events: int, amount: int, tracking: Tracking) -> None:
        """Upsert the account's row and record ``tracking``, atomically."""

    @abstractmethod
    def clear(self, application_name: str) -> None:
        """Empty the read model and forget the tracking of ``application_name``."""


class PostgresActivityView(PostgresTrackingRecorder, ActivityView):
    """The view on PostgreSQL, written as the library's tests write theirs."""

    def record(self, account_id: str, events: int, amount: int, tracking: Tracking) -> None:
        """Upsert the row and insert the tracking record in one transaction."""
        with (
            self.datastore.get_connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            self._insert_tracking(cursor, tracking)
            cursor.execute(
                PG_UPSERT,
                {
                    "id": account_id,
                    "events": events,
                    "last_position": tracking.notification_id,
                    "last_amount": amount,
                },
                prepare=True,
            )

    def clear(self, application_name: str) -> None:
        """Delete the rows and the tracking record."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(CLEAR_THEIRS)
            cursor.execute(
                SQL("DELETE FROM {0} WHERE application_name = %s").format(
                    Identifier(self.tracking_table_name)
                ),
                (application_name,),
            )


class SQLiteActivityView(SQLiteTrackingRecorder, ActivityView):
    """The view on SQLite."""

    def record(self, account_id: str, events: int, amount: int, tracking: Tracking) -> None:
        """Upsert the row and insert the tracking record in one transaction."""
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            cursor.execute(
                SQLITE_UPSERT,
                {
                    "id": account_id,
                    "events": events,
                    "last_position": tracking.notification_id,
                    "last_amount": amount,
                },
            )

    def clear(self, application_name: str) -> None:
        """Delete the rows and the tracking record."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(CLEAR_THEIRS)
            cursor.execute("DELETE FROM tracking WHERE application_name = ?", (application_name,))


class TheirActivityProjection(Projection[ActivityView]):
    """Their projection: one handler per event class, each writing through the view."""

    name = "AccountActivity"
    finish_at: ClassVar[int] = 0
    """When driven by the runner: the notification id at which ``finished`` is set."""
    finished: ClassVar[threading.Event] = threading.Event()

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events the projection does not handle: only tracked."""
        self.view.insert_tracking(tracking)
        self._tracked(tracking)

    @process_event.register(their_domain.Account.Opened)  # type: ignore[attr-defined]
    def _opened(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.record(
            str(domain_event.originator_id), domain_event.originator_version, 0, tracking
        )
        self._tracked(tracking)

    @process_event.register(their_domain.Account.Deposited)  # type: ignore[attr-defined]
    def _deposited(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.record(
            str(domain_event.originator_id),
            domain_event.originator_version,
            domain_event.amount,
            tracking,
        )
        self._tracked(tracking)

    def _tracked(self, tracking: Tracking) -> None:
        if self.finish_at and tracking.notification_id >= self.finish_at:
            self.finished.set()


class TheirProjection:
    """Their side on one database: the app that appended, the view, the projection."""

    def __init__(self, app: TheirBank, env: dict[str, str], backend: str) -> None:
        self.app = app
        self.env = env
        self.view_class: type[ActivityView] = (
            PostgresActivityView if backend == "postgres" else SQLiteActivityView
        )
        self.view: ActivityView = (
            InfrastructureFactory[ActivityView]
            .construct(env=Environment(TheirActivityProjection.name, env))
            .tracking_recorder(self.view_class)
        )
        self.projection = TheirActivityProjection(self.view)

    def close(self) -> None:
        """Close the view's connections."""
        self.view.datastore.close()  # type: ignore[attr-defined]

    def catch_up(self, head: int) -> Sample:
        """The subscription's loop on this thread: pages of 500, decode, process."""
        self.view.clear(self.app.name)
        app, projection, name = self.app, self.projection, self.app.name
        recorder, mapper = app.recorder, app.mapper
        done = 0
        with Stopwatch() as watch:
            start = self.view.max_tracking_id(name) or 0
            while True:
                page = recorder.select_notifications(
                    start=start, limit=PAGE, inclusive_of_start=False
                )
                for notification in page:
                    projection.process_event(
                        mapper.to_domain_event(notification), Tracking(name, notification.id)
                    )
                done += len(page)
                if len(page) < PAGE:
                    break
                start = page[-1].id
        if done != head or self.view.max_tracking_id(name) != head:
            raise RuntimeError(f"their catch-up stopped short: {done} of {head}")
        return Sample(done, watch.seconds)

    def run_runner(self, head: int, within: float) -> Sample:
        """Their ``ProjectionRunner`` (PostgreSQL): from its construction to the head's tracking."""
        self.view.clear(self.app.name)
        TheirActivityProjection.finish_at = head
        TheirActivityProjection.finished.clear()
        try:
            with Stopwatch() as watch:
                runner = ProjectionRunner(
                    application_class=TheirBank,
                    projection_class=TheirActivityProjection,
                    view_class=self.view_class,
                    env=self.env,
                )
                reached = TheirActivityProjection.finished.wait(within)
            with runner:
                runner.run_forever(timeout=0)  # re-raises an error of its thread
        finally:
            TheirActivityProjection.finish_at = 0
        if not reached or self.view.max_tracking_id(self.app.name) != head:
            raise RuntimeError(f"their runner did not reach {head} within {within} s")
        return Sample(head, watch.seconds)

    def totals(self) -> tuple[int, int]:
        """Return the read model's row count and the sum of its ``events`` column."""
        with self.view.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute(TOTALS_THEIRS)
            row = cursor.fetchone()
        return int(row["n"]), int(row["total"] or 0)


# ---------------------------------------------------------------- the run


@dataclass
class BackendFigures:
    """What one backend measured."""

    backend: str
    events: int
    ours: dict[int, float]
    theirs: float
    theirs_runner: float | None
    sql_share: dict[int, float]
    cpu_share: dict[int, float]
    breakdown_seconds: float
    breakdown: Clock
    breakdown_batch: int
    profile: str
    code_shares: dict[str, float]


@dataclass
class ProjectionResults:
    """Every backend's figures, in the order measured."""

    backends: list[BackendFigures] = field(default_factory=list)
    postgres_version: str = "not measured"


def _blocking(function: Callable[[], Sample]) -> Workload:
    async def run() -> Sample:
        return function()

    return run


async def _fill(
    ours: OurBank, theirs: TheirBank, events: int, streams: int, progress: Callable[[str], None]
) -> int:
    per_stream = events // streams
    progress(f"appending {streams * per_stream:,} events over {streams:,} accounts per side")
    for _ in range(streams):
        await ours.open_account(deposits=per_stream - 1)
        theirs.open_account(deposits=per_stream - 1)
    our_head, their_head = await ours.current_position(), theirs.current_position()
    if our_head != their_head:
        raise RuntimeError(f"the sides hold different numbers of events: {our_head}, {their_head}")
    return our_head


async def _bench_backend(
    backend: str,
    *,
    url: str,
    env: dict[str, str],
    plan: Plan,
    report: Report,
    progress: Callable[[str], None],
) -> BackendFigures:
    sizes = plan.projection_batches
    bank = await OurBank.build(url)
    app = TheirBank(env=env)
    their: TheirProjection | None = None
    try:
        async with bank.engine.begin() as connection:
            await connection.run_sync(_metadata.create_all)
        head = await _fill(
            bank,
            app,
            plan.projection_events,
            plan.projection_streams,
            lambda m: progress(f"{backend}: (h) {m}"),
        )
        ours = OurProjection(bank, sizes)
        their = TheirProjection(app, env, backend)
        sides: dict[str, Workload] = {
            f"ours:{size}": partial(ours.catch_up, size, head) for size in sizes
        }
        sides["theirs"] = _blocking(partial(their.catch_up, head))
        progress(
            f"{backend}: (h) projection catch-up of {head:,} events, "
            f"{plan.projection_repeats} samples per side"
        )
        rates = await compare(sides, repeats=plan.projection_repeats, warm_up=False)
        expected = (plan.projection_streams, head)
        if await ours.totals() != expected or their.totals() != expected:
            raise RuntimeError(
                "a read model does not hold one row per account, counting every event"
            )
        runner_rate = None
        if backend == "postgres":
            progress(f"{backend}: (h) their ProjectionRunner, one catch-up")
            runner_rate = their.run_runner(head, within=max(600.0, head / 100)).rate
        best_theirs = max(rates["theirs"], runner_rate or 0.0)
        for size in sizes:
            report.add(
                Row(
                    f"(h) projection catch-up {head:,} events, batch {size}",
                    backend,
                    "events/s",
                    ours=rates[f"ours:{size}"],
                    theirs=best_theirs,
                )
            )
        progress(f"{backend}: (h) our catch-up, timed part by part, then under cProfile")
        breakdown_batch = sizes[0]
        seconds, clock = await ours.breakdown(breakdown_batch, head)
        profile, code_shares = await ours.profiled(breakdown_batch)
        return BackendFigures(
            backend=backend,
            events=head,
            ours={size: rates[f"ours:{size}"] for size in sizes},
            theirs=rates["theirs"],
            theirs_runner=runner_rate,
            sql_share={size: statistics.median(ours.sql_shares[size]) for size in sizes},
            cpu_share={size: statistics.median(ours.cpu_shares[size]) for size in sizes},
            breakdown_seconds=seconds,
            breakdown=clock,
            breakdown_batch=breakdown_batch,
            profile=profile,
            code_shares=code_shares,
        )
    finally:
        if their is not None:
            their.close()
        app.close()
        await bank.close()


async def bench_projections(
    plan: Plan, report: Report, results: ProjectionResults, progress: Callable[[str], None]
) -> None:
    """Run (h) on a SQLite file and a PostgreSQL database of its own; keep the figures."""
    async with fresh_sqlite() as target:
        figures = await _bench_backend(
            "sqlite",
            url=target.sqlalchemy_url,
            env=target.eventsourcing_env(),
            plan=plan,
            report=report,
            progress=progress,
        )
    _keep(results, figures)
    async with fresh_postgres() as target:
        connection = await asyncpg.connect(target.dsn)
        results.postgres_version = await connection.fetchval("SHOW server_version")
        await connection.close()
        figures = await _bench_backend(
            "postgres",
            url=target.sqlalchemy_url,
            env=target.eventsourcing_env(),
            plan=plan,
            report=report,
            progress=progress,
        )
    _keep(results, figures)


def _keep(results: ProjectionResults, figures: BackendFigures) -> None:
    # Also on stderr at once: a long run's figures survive a failure later in the run.
    results.backends.append(figures)
    print(summary_text(ProjectionResults([figures])), file=sys.stderr, flush=True)


def summary_text(results: ProjectionResults) -> str:
    """Return the catch-up rates against the targets, our overhead, and the profiles."""
    lines = [
        (
            "backend",
            "events",
            "batch",
            "ours ev/s",
            "theirs ev/s",
            "ours/theirs",
            "read-model SQL",
            "worker overhead",
            "SQL µs/ev",
            "rest µs/ev",
            "loop CPU",
        )
    ]
    for figures in results.backends:
        theirs = max(figures.theirs, figures.theirs_runner or 0.0)
        for size, rate in figures.ours.items():
            share = figures.sql_share[size]
            lines.append(
                (
                    figures.backend,
                    f"{figures.events:,}",
                    str(size),
                    f"{rate:,.0f}",
                    f"{theirs:,.0f}",
                    f"{rate / theirs:.2f}",
                    f"{share:.1%}",
                    f"{1 - share:.1%}",
                    f"{share * 1e6 / rate:.0f}",
                    f"{(1 - share) * 1e6 / rate:.0f}",
                    f"{figures.cpu_share[size]:.1%}",
                )
            )
    text = _aligned(lines)
    text += (
        "\n(targets: ours/theirs >= 3; worker overhead, all but the read-model SQL, < 33.3%;"
        "\n loop CPU: CPU time of the event loop's thread over the wall clock, i.e. the"
        "\n Python side: worker, SQLAlchemy and driver; the rest is waiting on the database)"
    )
    for figures in results.backends:
        runner = (
            f", their ProjectionRunner {figures.theirs_runner:,.0f} ev/s (one sample)"
            if figures.theirs_runner is not None
            else ""
        )
        text += (
            f"\n{figures.backend}: their subscription loop {figures.theirs:,.0f} ev/s{runner}"
            " (ours/theirs uses the faster)"
        )
    for figures in results.backends:
        per_event = 1e6 / figures.events
        total = figures.breakdown_seconds
        parts = [("part", "µs/event", "share")]
        accounted = 0.0
        for part, seconds in figures.breakdown.parts.items():
            accounted += seconds
            parts.append((part, f"{seconds * per_event:.1f}", f"{seconds / total:.1%}"))
        rest = total - accounted
        parts.append(
            (
                "the rest: worker loop, dispatch, lease, status",
                f"{rest * per_event:.1f}",
                f"{rest / total:.1%}",
            )
        )
        parts.append(("catch-up, wall clock", f"{total * per_event:.1f}", "100.0%"))
        text += (
            f"\n\n{figures.backend}: our catch-up of {figures.events:,} events, batch "
            f"{figures.breakdown_batch}, timed part by part ({figures.events / total:,.0f} ev/s):\n"
        )
        text += _aligned(parts, left=1)
        batches = -(-figures.events // figures.breakdown_batch)
        sent = ", ".join(
            f"{kind} {count:,} ({count / batches:.1f}/batch)"
            for kind, count in figures.breakdown.statements.most_common()
        )
        text += f"\nstatements sent: {sent}"
    for figures in results.backends:
        text += (
            f"\n\n{figures.backend}: cProfile of our catch-up (batch {figures.breakdown_batch}), "
            f"top {PROFILE_TOP} by own time:\n"
        )
        text += _profile_lines(figures.profile)
        text += "\nown time (tottime) by kind of code, of the profiled catch-up:\n"
        text += _aligned(
            [("kind of code", "share")]
            + [(kind, f"{share:.1%}") for kind, share in figures.code_shares.items()],
            left=1,
        )
    return text


def _profile_lines(profile: str) -> str:
    lines = profile.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


def _aligned(lines: Sequence[Sequence[str]], left: int = 0) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column < left else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )
