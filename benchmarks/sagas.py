"""(j) Four-step sagas end to end, on SQLite and PostgreSQL, against the same commands chained bare.

``python -m benchmarks.sagas [--quick]`` (or ``python -m benchmarks --only sagas``).

A saga (``SagaBuilder``, ``SQLAlchemySagaRepository``) takes four steps:
``Begin`` sends ``DoStep(1)``; each ``DoStep(k)`` handler inserts one row into
``bench_saga_effects`` in its own unit of work and publishes ``StepDone(k)``,
which sends ``DoStep(k+1)``; step 4 completes the saga. Every step declares a
compensation (stored with the saga's state, never run here).

The reference ("bare") is the same four commands chained by a plain event
handler that sends ``DoStep(k+1)`` on ``StepDone(k)``, with no saga state: what
the process costs without a process manager. Both run through the same
mediator, handlers and database, one process after the other (sequential:
each process ends before the next begins), then, on PostgreSQL, 8 at a time.

Figures:

* ``processes/s``: completed processes per second;
* ``ms per step``: wall time per step, and ``added ms per step``: the saga's
  minus the bare chain's;
* ``saga code`` / ``commands``: the share of the saga run's wall time spent in
  the saga manager (deciding, loading and saving the state, recording each
  outcome) and in the commands (their handlers and transactions), each
  measured exclusive of the other (a command's event dispatch runs the saga
  nested inside it; that time counts as the saga's).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import uuid4

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from benchmarks.databases import fresh_postgres, fresh_sqlite
from cqrs_ddd_advanced_core.sagas import SagaBuilder, SagaManager, bootstrap_sagas
from cqrs_ddd_core import (
    Command,
    CommandResponse,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    Mediator,
    MessageTypeRegistry,
    current_uow,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemySagaRepository,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)

STEPS = 4
CONCURRENT = 8

effects = Table(
    "bench_saga_effects",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_key", String(64), nullable=False),
    Column("step", Integer, nullable=False),
)


class Begin(DomainEvent):
    key: str


class Step1Done(DomainEvent):
    key: str


class Step2Done(DomainEvent):
    key: str


class Step3Done(DomainEvent):
    key: str


class Finished(DomainEvent):
    key: str


DONE = {1: Step1Done, 2: Step2Done, 3: Step3Done, 4: Finished}


class DoStep(Command):
    key: str
    step: int


class UndoStep(Command):
    key: str
    step: int


def _saga() -> Any:
    builder = SagaBuilder("BenchFourSteps").correlate_by("key")
    triggers: list[type[DomainEvent]] = [Begin, Step1Done, Step2Done, Step3Done]
    for step, trigger in enumerate(triggers, start=1):
        builder.on(
            trigger,
            send=partial(lambda step, e: DoStep(key=e.key, step=step), step),
            step=f"s{step}",
            compensate=partial(lambda step, e: UndoStep(key=e.key, step=step), step),
            complete=step == STEPS,
        )
    return builder.build()


BenchSaga = _saga()


@dataclass
class Split:
    """Exclusive wall time per kind of work (seconds), measured with a stack of timers."""

    totals: dict[str, float] = field(default_factory=lambda: {"saga": 0.0, "command": 0.0})
    _stack: list[list[float]] = field(default_factory=list)

    def timed(
        self, kind: str, work: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Wrap ``work``: its time, minus the timed work nested in it, counts as ``kind``."""

        async def run(*args: Any) -> Any:
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return await work(*args)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[0]
                self.totals[kind] += spent - frame[1]
                if self._stack:
                    self._stack[-1][1] += spent

        return run


class App:
    """The mediator, its handlers and (for the saga side) the saga manager, on one engine."""

    def __init__(self, engine: Any, *, saga: bool, split: Split | None = None) -> None:
        self.dispatcher = EventDispatcher(on_error="raise")
        registry = HandlerRegistry()

        @registry.command_handler(DoStep)
        async def do_step(command: DoStep) -> CommandResponse[None]:
            uow = current_uow()
            if not isinstance(uow, SQLAlchemyUnitOfWork):
                raise TypeError(f"the step needs a SQLAlchemyUnitOfWork, not {uow!r}")
            await uow.connection.execute(
                insert(effects).values(saga_key=command.key, step=command.step)
            )
            done = DONE[command.step](key=command.key, aggregate_id=command.key)
            return CommandResponse(result=None, events=[done])

        @registry.command_handler(UndoStep)
        async def undo_step(command: UndoStep) -> CommandResponse[None]:
            return CommandResponse(result=None)

        mediator = Mediator(
            registry=registry,
            uow_factory=partial(SQLAlchemyUnitOfWork, engine),
            event_dispatcher=self.dispatcher,
        )
        send = mediator.send if split is None else split.timed("command", mediator.send)
        self.send = send
        self.manager: SagaManager | None = None
        if saga:
            result = bootstrap_sagas(
                sagas=[BenchSaga],
                repository=SQLAlchemySagaRepository(engine),
                command_bus=mediator,
                message_registry=MessageTypeRegistry([DoStep, UndoStep]),
            )
            self.manager = result.manager
            self.manager.send = send
            handle = (
                self.manager.handle if split is None else split.timed("saga", self.manager.handle)
            )
            for event_type in self.manager.event_types:
                self.dispatcher.subscribe(event_type, handle)
            self.start = handle
        else:

            async def chain(event: DomainEvent) -> None:
                step = {Begin: 1, Step1Done: 2, Step2Done: 3, Step3Done: 4}[type(event)]
                await send(DoStep(key=event.key, step=step))  # type: ignore[attr-defined]

            for event_type in (Step1Done, Step2Done, Step3Done):
                self.dispatcher.subscribe(event_type, chain)
            self.start = chain

    async def run_one(self, key: str) -> None:
        await self.start(Begin(key=key, aggregate_id=key))


@dataclass(frozen=True)
class Figures:
    """One side's run: how many processes, in how many seconds, and the saga's split."""

    processes: int
    seconds: float
    saga_seconds: float = 0.0
    command_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.processes / self.seconds

    @property
    def ms_per_step(self) -> float:
        return self.seconds * 1000 / (self.processes * STEPS)


async def _run_side(url: str, *, saga: bool, processes: int, concurrent: int) -> Figures:
    engine = create_engine(url, pool_size=max(8, concurrent * 6))
    try:
        await upgrade_schema(engine)
        async with engine.begin() as connection:
            await connection.run_sync(effects.metadata.create_all)
        split = Split() if saga else None
        app = App(engine, saga=saga, split=split)
        await app.run_one(f"warm-{uuid4().hex}")  # connections, statements, caches
        if split is not None:
            split.totals = {"saga": 0.0, "command": 0.0}
        keys = [f"bench-{uuid4().hex}" for _ in range(processes)]
        gate = asyncio.Semaphore(concurrent)

        async def one(key: str) -> None:
            async with gate:
                await app.run_one(key)

        started = time.perf_counter()
        await asyncio.gather(*(one(key) for key in keys))
        seconds = time.perf_counter() - started
        if app.manager is not None:
            state = await app.manager.state_of(BenchSaga, keys[-1])
            if state is None or state.status != "completed":
                raise RuntimeError(f"the last saga did not complete: {state}")
        if split is None:
            return Figures(processes, seconds)
        return Figures(processes, seconds, split.totals["saga"], split.totals["command"])
    finally:
        await engine.dispose()


@dataclass
class Row:
    backend: str
    concurrent: int
    saga: Figures
    bare: Figures


async def bench_sagas(processes: int, progress: Callable[[str], None]) -> list[Row]:
    """Run both sides on a fresh SQLite file and a fresh PostgreSQL database."""
    rows = []
    async with fresh_sqlite() as sqlite_target, fresh_postgres() as postgres_target:
        cases = [
            ("SQLite", sqlite_target.sqlalchemy_url, 1),
            ("PostgreSQL", postgres_target.sqlalchemy_url, 1),
            ("PostgreSQL", postgres_target.sqlalchemy_url, CONCURRENT),
        ]
        for backend, url, concurrent in cases:
            progress(f"(j) {backend}, {concurrent} at a time: bare chain")
            bare = await _run_side(url, saga=False, processes=processes, concurrent=concurrent)
            progress(f"(j) {backend}, {concurrent} at a time: saga")
            saga = await _run_side(url, saga=True, processes=processes, concurrent=concurrent)
            rows.append(Row(backend, concurrent, saga, bare))
    return rows


def summary_text(rows: Sequence[Row], processes: int) -> str:
    """Return the table of (j)."""
    lines = [
        f"(j) {processes:,} four-step processes: a saga against the same commands chained bare",
        "",
        "| backend | at a time | sagas/s | bare/s | bare ÷ saga | ms per step, saga | "
        "added ms per step | saga code | commands |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        saga, bare = row.saga, row.bare
        added = saga.ms_per_step - bare.ms_per_step
        busy = saga.saga_seconds + saga.command_seconds
        lines.append(
            f"| {row.backend} | {row.concurrent} | {saga.per_second:,.0f} | "
            f"{bare.per_second:,.0f} | {bare.per_second / saga.per_second:.2f} | "
            f"{saga.ms_per_step:.2f} | {added:.2f} | "
            f"{saga.saga_seconds / busy:.0%} | {saga.command_seconds / busy:.0%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run (j) and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 processes instead of 1,000")
    args = parser.parse_args(argv)
    processes = 200 if args.quick else 1_000

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    print(summary_text(asyncio.run(bench_sagas(processes, progress)), processes))


if __name__ == "__main__":
    main()
