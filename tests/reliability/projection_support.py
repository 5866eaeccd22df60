"""What the projection scenarios (R5, R6, R15, R17) share: a read model that shows every slip.

- `Deposited` is the event the loads append; `balance_table` is the read model, one
  row per stream with ``applied_count`` (one per applied event), ``total`` (the sum
  of the amounts), ``digest`` (an order-sensitive fold of amount and version) and the
  last version and position applied. A double application raises ``applied_count``
  above the stream's number of events, a skip leaves it below, a reordering changes
  ``digest``.
- `commit_log_table` gets one row per applied event *inside the batch's transaction*
  (position, event id, and the lease's owner and epoch as the applying worker
  believed them), so it holds exactly what committed: each position once, epochs
  never going down along the positions, one owner per epoch.
- `BalanceProjector` writes both; `LeaseRecordingStorage` wraps the SQL projection
  storage to tell the projector which lease the batch runs under.
- `append_load` appends the loads (many streams, random batches, conflicts retried);
  `ProjectionProbe` reads checkpoints, read models and ``pg_stat_activity`` from the
  test's side; `cold_rebuild` projects everything from scratch into a fresh table.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from harness.checker import canonical_hash
from harness.history import HistoryLog
from harness.pg_faults import HARNESS_APPLICATION_NAME, connect
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import (
    Lease,
    ProjectionContext,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    projects,
)
from cqrs_ddd_core import ConcurrencyError, DomainEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, SQLAlchemyReadModelStore
from cqrs_ddd_persistence_sqlalchemy.schema import events as events_table
from cqrs_ddd_persistence_sqlalchemy.schema import projection_dead_letters
from cqrs_ddd_persistence_sqlalchemy.schema import projections as projections_table

DIGEST_MODULUS = 2_147_483_647
DIGEST_BASE = 1_000_003
MAX_APPEND_RETRIES = 1_000

CURRENT_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "current_lease", default=None
)
"""The lease of the batch being applied in this task (set by `LeaseRecordingStorage`)."""


class Deposited(DomainEvent):
    """The load's event: an amount for the stream's balance."""

    amount: int


def balance_table(name: str) -> Table:
    """Return the read-model table ``name`` (one row per stream), in a metadata of its own."""
    return Table(
        name,
        MetaData(),
        Column("stream_id", String(255), primary_key=True),
        Column("applied_count", Integer, nullable=False),
        Column("total", BigInteger, nullable=False),
        Column("digest", BigInteger, nullable=False),
        Column("last_version", Integer, nullable=False),
        Column("last_position", BigInteger, nullable=False),
    )


def commit_log_table(name: str) -> Table:
    """Return the commit log ``<name>_log``: one row per applied event (no unique key)."""
    return Table(
        f"{name}_log",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("position", BigInteger, nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("owner", String(255), nullable=False),
        Column("epoch", BigInteger, nullable=False),
    )


async def create_tables(engine: AsyncEngine, *tables: Table) -> None:
    """Create ``tables`` (each in its own metadata) if they do not exist."""
    async with engine.begin() as connection:
        for table in tables:
            await connection.run_sync(table.metadata.create_all, tables=[table])


def fold(
    row: Mapping[str, Any] | None, stream_id: str, amount: int, context: Any
) -> dict[str, Any]:
    """Return the stream's row after applying one event (``context``: version, position)."""
    current = dict(row) if row is not None else _empty_row(stream_id)
    digest = (int(current["digest"]) * DIGEST_BASE + amount * 7 + context.version) % DIGEST_MODULUS
    return {
        "stream_id": stream_id,
        "applied_count": int(current["applied_count"]) + 1,
        "total": int(current["total"]) + amount,
        "digest": digest,
        "last_version": context.version,
        "last_position": context.position,
    }


def _empty_row(stream_id: str) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "applied_count": 0,
        "total": 0,
        "digest": 0,
        "last_version": 0,
        "last_position": 0,
    }


@dataclass(frozen=True, slots=True)
class Applied:
    """What `expected_rows` folds: an event's stream, version, position and amount."""

    stream_id: str
    version: int
    position: int
    amount: int


def expected_rows(applied: Iterable[Applied]) -> dict[str, dict[str, Any]]:
    """Fold ``applied`` (in the order given) into the rows a correct projection holds."""
    rows: dict[str, dict[str, Any]] = {}
    for event in applied:
        rows[event.stream_id] = fold(
            rows.get(event.stream_id), event.stream_id, event.amount, event
        )
    return rows


class BalanceProjector(Projector):
    """Projects `Deposited` into a `balance_table`, and into its commit log when given.

    Each event is folded into its stream's row with one upsert that computes the new
    row in SQL (`fold` in the database); with ``through_store=True`` it goes through
    `SQLAlchemyReadModelStore` instead (``get`` then ``upsert``, two round trips).

    With a `HistoryLog`, every handler call is recorded as op ``apply``, phase
    ``invoke`` (key: the event id): a call whose transaction was lost shows up as a
    second invoke of the same key.
    """

    def __init__(
        self,
        name: str,
        engine: AsyncEngine,
        *,
        table: Table | None = None,
        log_table: Table | None = None,
        history: HistoryLog | None = None,
        through_store: bool = False,
    ) -> None:
        self.projection_name = name  # type: ignore[misc]
        self.through_store = through_store
        self.table = table if table is not None else balance_table(name)
        self.read_model = SQLAlchemyReadModelStore(self.table, engine)
        self.log_table = log_table
        self.history = history

    def _fold_statement(self, stream_id: str, amount: int, context: Any) -> Any:
        """One upsert that does what `fold` does, in the database (one round trip)."""
        dialect = postgresql if self.read_model.engine.dialect.name == "postgresql" else sqlite
        step = amount * 7 + context.version
        statement = dialect.insert(self.table).values(
            stream_id=stream_id,
            applied_count=1,
            total=amount,
            digest=step % DIGEST_MODULUS,
            last_version=context.version,
            last_position=context.position,
        )
        columns = self.table.c
        return statement.on_conflict_do_update(
            index_elements=[columns.stream_id],
            set_={
                "applied_count": columns.applied_count + 1,
                "total": columns.total + amount,
                "digest": (columns.digest * DIGEST_BASE + step) % DIGEST_MODULUS,
                "last_version": context.version,
                "last_position": context.position,
            },
        )

    async def reset(self, connection: Any) -> None:
        """Empty the read model and the commit log (a rebuild starts both afresh)."""
        await self.read_model.clear(connection)
        if self.log_table is not None:
            await connection.execute(delete(self.log_table))

    @projects(Deposited)
    async def deposited(self, event: Deposited, context: ProjectionContext) -> None:
        await self.apply_amount(event, event.amount, context)

    async def apply_amount(
        self, event: DomainEvent, amount: int, context: ProjectionContext
    ) -> None:
        """Fold ``amount`` into the stream's row (and log it), through the batch's connection."""
        if self.history is not None:
            self.history.record(
                "apply",
                str(event.event_id),
                "invoke",
                position=context.position,
                stream=context.stream_id,
            )
        connection = context.connection
        if self.through_store:
            row = await self.read_model.get(connection, context.stream_id)
            await self.read_model.upsert(connection, fold(row, context.stream_id, amount, context))
        else:
            await connection.execute(self._fold_statement(context.stream_id, amount, context))
        if self.log_table is not None:
            lease = CURRENT_LEASE.get()
            await connection.execute(
                insert(self.log_table).values(
                    position=context.position,
                    event_id=str(event.event_id),
                    owner=lease.owner if lease is not None else "?",
                    epoch=lease.epoch if lease is not None else -1,
                )
            )


class LeaseRecordingStorage:
    """Wraps a projection storage; its batches tell the handlers their lease (`CURRENT_LEASE`)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.asynccontextmanager
    async def batch(self, lease: Lease, ttl: float) -> AsyncIterator[Any]:
        token = CURRENT_LEASE.set(lease)
        try:
            async with self._inner.batch(lease, ttl) as batch:
                yield batch
        finally:
            CURRENT_LEASE.reset(token)


@dataclass
class LoadTally:
    """What `append_load` appended: events, appends, conflicts retried."""

    events: int = 0
    appends: int = 0
    conflicts: int = 0
    versions: dict[str, int] = field(default_factory=dict)


async def append_load(
    store: SQLAlchemyEventStore,
    *,
    count: int,
    streams: Sequence[str],
    rng: random.Random,
    tally: LoadTally,
    max_batch: int = 5,
    pause: float = 0.0,
    gate: asyncio.Queue[int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Append ``count`` `Deposited` events in batches of 1 to ``max_batch`` to random streams.

    ``tally.versions`` is shared between concurrent loads; a conflict takes the actual
    version from the error and retries. With ``gate``, the load appends only as many
    events as the allowances put on it so far (it waits for the next one); with
    ``stop``, it ends early once that is set. ``pause`` sleeps up to that many seconds
    after each append.
    """
    allowed = 0
    appended = 0
    while appended < count:  # bounded: every pass appends at least one event
        if stop is not None and stop.is_set():
            return
        if gate is not None and appended >= allowed:
            allowed += await gate.get()
            continue
        size = min(rng.randint(1, max_batch), count - appended)
        if gate is not None:
            size = min(size, allowed - appended)
        stream = rng.choice(streams)
        batch = [Deposited(amount=rng.randint(1, 1_000)) for _ in range(size)]
        for _ in range(MAX_APPEND_RETRIES):
            try:
                await store.append(stream, batch, expected_version=tally.versions.get(stream, 0))
            except ConcurrencyError as error:
                tally.conflicts += 1
                tally.versions[stream] = error.actual_version
                continue
            tally.versions[stream] = tally.versions.get(stream, 0) + size
            break
        else:
            raise RuntimeError(f"append to {stream} kept conflicting")
        appended += size
        tally.events += size
        tally.appends += 1
        if pause:
            await asyncio.sleep(rng.uniform(0, pause))


@dataclass(frozen=True, slots=True)
class ProjectionRow:
    """The projection's row in ``cqrs_projections``."""

    position: int
    owner: str | None
    epoch: int


class ProjectionProbe:
    """Reads a projection's progress, its read model and its sessions from the test's side."""

    def __init__(self, engine: AsyncEngine, dsn: str | None = None) -> None:
        self.engine = engine
        self.dsn = dsn

    async def projection(self, name: str) -> ProjectionRow:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        projections_table.c.position,
                        projections_table.c.owner,
                        projections_table.c.epoch,
                    ).where(projections_table.c.name == name)
                )
            ).first()
        if row is None:
            return ProjectionRow(0, None, 0)
        return ProjectionRow(int(row.position), row.owner, int(row.epoch))

    async def head(self) -> int:
        async with self.engine.connect() as connection:
            value = await connection.scalar(select(func.max(events_table.c.position)))
        return int(value or 0)

    async def rows(self, table: Table) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            result = await connection.execute(select(table))
            return [dict(row) for row in result.mappings()]

    async def events_per_stream(self, up_to: int | None = None) -> dict[str, int]:
        """Return how many events each stream holds (at positions up to ``up_to``)."""
        query = select(events_table.c.stream_id, func.count()).group_by(events_table.c.stream_id)
        if up_to is not None:
            query = query.where(events_table.c.position <= up_to)
        async with self.engine.connect() as connection:
            return {stream: int(n) for stream, n in (await connection.execute(query)).all()}

    async def positions(self) -> list[int]:
        async with self.engine.connect() as connection:
            query = select(events_table.c.position).order_by(events_table.c.position)
            return [int(p) for p in await connection.scalars(query)]

    async def dead_letter_count(self, name: str) -> int:
        async with self.engine.connect() as connection:
            value = await connection.scalar(
                select(func.count())
                .select_from(projection_dead_letters)
                .where(projection_dead_letters.c.projection == name)
            )
        return int(value or 0)

    async def applied_counts(self, table: Table) -> dict[str, int]:
        return {row["stream_id"]: int(row["applied_count"]) for row in await self.rows(table)}

    async def mismatches(
        self, table: Table, up_to: int | None = None
    ) -> dict[str, tuple[int, int]]:
        """Return ``{stream: (events, applied_count)}`` for every stream where they differ.

        With ``up_to`` (a checkpoint), only events at positions up to it count: a read
        model that committed with its checkpoint matches them exactly.
        """
        expected = await self.events_per_stream(up_to)
        applied = await self.applied_counts(table)
        return {
            stream: (expected.get(stream, 0), applied.get(stream, 0))
            for stream in expected.keys() | applied.keys()
            if expected.get(stream, 0) != applied.get(stream, 0)
        }

    async def commit_log(self, log_table: Table) -> list[dict[str, Any]]:
        rows = await self.rows(log_table)
        return sorted(rows, key=lambda row: (row["position"], row["id"]))

    async def wait_for_position(
        self, name: str, position: int, *, within: float, what: str = ""
    ) -> float:
        """Wait until the checkpoint of ``name`` reaches ``position``; return the seconds taken."""
        started = time.monotonic()
        deadline = started + within
        for _ in range(1_000_000):
            if (await self.projection(name)).position >= position:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        current = (await self.projection(name)).position
        raise TimeoutError(
            f"{what or name}: checkpoint {current} did not reach {position} within {within:g} s"
        )

    async def listener_pids(self, application_name: str) -> list[int]:
        """Return the backends of ``application_name`` that LISTEN (their last query)."""
        connection = await self._observer()
        try:
            rows = await connection.fetch(
                """
                SELECT pid FROM pg_stat_activity
                WHERE application_name = $1 AND datname = current_database()
                  AND query ILIKE 'LISTEN%'
                """,
                application_name,
            )
        finally:
            await connection.close()
        return [int(row["pid"]) for row in rows]

    async def terminate_listeners(self, application_name: str) -> list[int]:
        """Terminate the LISTENing sessions of ``application_name``; return their pids."""
        connection = await self._observer()
        try:
            rows = await connection.fetch(
                """
                WITH victims AS MATERIALIZED (
                    SELECT pid FROM pg_stat_activity
                    WHERE application_name = $1 AND datname = current_database()
                      AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()
                )
                SELECT pid FROM victims WHERE pg_terminate_backend(pid, 5000)
                """,
                application_name,
            )
        finally:
            await connection.close()
        return [int(row["pid"]) for row in rows]

    async def _observer(self) -> asyncpg.Connection:
        if self.dsn is None:
            raise RuntimeError("this probe has no PostgreSQL DSN")
        return await connect(self.dsn, application_name=HARNESS_APPLICATION_NAME)


def log_anomalies(log: Sequence[Mapping[str, Any]], positions: Sequence[int]) -> dict[str, Any]:
    """Check a commit log against the event positions: what was applied twice, missed, fenced.

    Returns counts (and a few examples): ``duplicated`` positions, ``missing``
    positions, ``epoch_regressions`` (a commit of an older epoch at a later position
    than a newer epoch's: a fenced-out worker's write) and ``shared_epochs`` (an epoch
    committed by two owners).
    """
    seen: dict[int, int] = {}
    for row in log:
        seen[int(row["position"])] = seen.get(int(row["position"]), 0) + 1
    duplicated = sorted(p for p, n in seen.items() if n > 1)
    missing = sorted(set(positions) - seen.keys())
    regressions = []
    highest = -1
    owners: dict[int, set[str]] = {}
    for row in sorted(log, key=lambda r: (int(r["position"]), int(r["id"]))):
        epoch = int(row["epoch"])
        if epoch < highest:
            regressions.append(int(row["position"]))
        highest = max(highest, epoch)
        owners.setdefault(epoch, set()).add(str(row["owner"]))
    shared = sorted(epoch for epoch, names in owners.items() if len(names) > 1)
    return {
        "duplicated": len(duplicated),
        "missing": len(missing),
        "epoch_regressions": len(regressions),
        "shared_epochs": len(shared),
        "examples": {
            "duplicated": duplicated[:5],
            "missing": missing[:5],
            "epoch_regressions": regressions[:5],
            "shared_epochs": shared[:5],
        },
    }


NO_ANOMALIES = {"duplicated": 0, "missing": 0, "epoch_regressions": 0, "shared_epochs": 0}


def counts_of(anomalies: Mapping[str, Any]) -> dict[str, int]:
    """Return the counts of `log_anomalies` without the examples (compare to `NO_ANOMALIES`)."""
    return {key: value for key, value in anomalies.items() if key != "examples"}


async def assert_applied_exactly_once(
    probe: ProjectionProbe, name: str, table: Table, log_table: Table, note: str
) -> None:
    """Every stored event applied once: counts per stream, the commit log, no dead letter."""
    assert await probe.mismatches(table) == {}, note
    assert await probe.dead_letter_count(name) == 0, note
    anomalies = log_anomalies(await probe.commit_log(log_table), await probe.positions())
    assert counts_of(anomalies) == NO_ANOMALIES, f"{anomalies} {note}"


def row_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """Return the canonical hash of read-model rows (all columns)."""
    return canonical_hash(rows)


async def cold_rebuild(engine: AsyncEngine, name: str) -> list[dict[str, Any]]:
    """Project every stored event from scratch into a fresh table ``name``; return its rows.

    The projection runs in this process with a worker of its own (projection
    ``name``, table ``name``), from position 0 to the head.
    """
    table = balance_table(name)
    await create_tables(engine, table)
    store = SQLAlchemyEventStore(engine)
    worker = ProjectionWorker(
        ProjectorRegistry([BalanceProjector(name, engine, table=table)]), store, batch_size=500
    )
    (status,) = await worker.catch_up(name)
    head = await store.current_position()
    if status.checkpoint != head:
        raise AssertionError(f"cold rebuild {name} stopped at {status.checkpoint} of {head}")
    return await ProjectionProbe(engine).rows(table)
