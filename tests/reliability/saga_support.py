"""What R12's test and its saga worker processes share: the saga, its commands, their effects.

``R12Saga`` takes four steps, each ``DoStep(key, step)`` undone by
``UndoStep(key, step)``: ``Begin`` sends step 1, and ``StepDone`` of step k
sends step k+1; step 4 completes the saga. A key names its fate: ``…-ok``
completes; ``…-fail<k>`` has its step k refused (a domain error: nothing
happens), so steps k-1 … 1 are compensated, latest first.

The handlers are idempotent as R12 asks: each effect is a row of
``r12_effects`` keyed by the command's id, written in the command's own
transaction (``INSERT … ON CONFLICT DO NOTHING``), so a command sent again
after a crash takes effect once. A ``DoStep`` answers with the same
``StepDone`` (same event id) whether it took effect now or before, as a
handler that replays its result does: the saga ignores an event it handled.
The ``seq`` column orders the effects as they were written.
"""

from __future__ import annotations

import asyncio
from functools import partial
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import (
    BigInteger,
    Column,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.sagas import SagaBootstrap, SagaBuilder, bootstrap_sagas
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
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemySagaRepository, SQLAlchemyUnitOfWork

STEPS = 4

metadata = MetaData()

effects = Table(
    "r12_effects",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("command_id", Uuid(), nullable=False, unique=True),
    Column("saga_key", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("step", Integer, nullable=False),
)

attempts = Table(
    "r12_attempts",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("command_id", Uuid(), nullable=False),
)
"""Every time a step's command reached its handler and committed, repeats included."""


class Begin(DomainEvent):
    key: str


class StepDone(DomainEvent):
    key: str
    step: int


class Step1Done(StepDone):
    pass


class Step2Done(StepDone):
    pass


class Step3Done(StepDone):
    pass


DONE_EVENTS: dict[int, type[StepDone]] = {1: Step1Done, 2: Step2Done, 3: Step3Done}


class DoStep(Command):
    key: str
    step: int


class UndoStep(Command):
    key: str
    step: int


class StepRefused(Exception):  # noqa: N818 - a refusal of the domain, as the key says
    """The step the key names fails."""


def failing_step(key: str) -> int | None:
    """Return the step that key ``key`` fails at, or None."""
    _, _, fate = key.rpartition("-")
    return int(fate.removeprefix("fail")) if fate.startswith("fail") else None


def begin_id(key: str, source: str) -> UUID:
    """The id of the ``Begin`` that ``source`` delivers for ``key``: one per source."""
    return uuid5(NAMESPACE_URL, f"r12/{key}/begin/{source}")


def _build() -> SagaBuilder:
    builder = SagaBuilder("R12").correlate_by("key")
    builder.on(
        Begin,
        send=lambda e: DoStep(key=e.key, step=1),
        step="s1",
        compensate=lambda e: UndoStep(key=e.key, step=1),
    )
    for step in range(2, STEPS + 1):
        builder.on(
            DONE_EVENTS[step - 1],
            send=partial(lambda step, e: DoStep(key=e.key, step=step), step),
            step=f"s{step}",
            compensate=partial(lambda step, e: UndoStep(key=e.key, step=step), step),
            complete=step == STEPS,
        )
    return builder


R12Saga = _build().build()


def build_sagas(
    engine: AsyncEngine, *, recovery_interval: float, work: float = 0.0
) -> SagaBootstrap:
    """Return the sagas over ``engine``, with the step handlers, wired like an application."""
    registry = HandlerRegistry()
    dispatcher = EventDispatcher(on_error="raise")

    async def record(command: DoStep | UndoStep, kind: str) -> None:
        uow = current_uow()
        assert isinstance(uow, SQLAlchemyUnitOfWork)
        await uow.connection.execute(insert(attempts).values(command_id=command.command_id))
        await uow.connection.execute(
            postgresql.insert(effects)
            .values(
                command_id=command.command_id, saga_key=command.key, kind=kind, step=command.step
            )
            .on_conflict_do_nothing(index_elements=[effects.c.command_id])
        )
        if work:
            await asyncio.sleep(work)

    @registry.command_handler(DoStep)
    async def do_step(command: DoStep) -> CommandResponse[None]:
        if command.step == failing_step(command.key):
            raise StepRefused(f"{command.key}: step {command.step} refused")
        await record(command, "do")
        if command.step == STEPS:
            return CommandResponse(result=None)
        done = DONE_EVENTS[command.step](
            key=command.key,
            step=command.step,
            aggregate_id=command.key,
            event_id=uuid5(command.command_id, "done"),
        )
        return CommandResponse(result=None, events=[done])

    @registry.command_handler(UndoStep)
    async def undo_step(command: UndoStep) -> CommandResponse[None]:
        await record(command, "undo")  # nothing to undo is fine: the row says it ran
        return CommandResponse(result=None)

    mediator = Mediator(
        registry=registry,
        uow_factory=partial(SQLAlchemyUnitOfWork, engine),
        event_dispatcher=dispatcher,
    )
    result = bootstrap_sagas(
        sagas=[R12Saga],
        repository=SQLAlchemySagaRepository(engine),
        command_bus=mediator,
        message_registry=MessageTypeRegistry([DoStep, UndoStep]),
        event_dispatcher=dispatcher,
        recovery_interval=recovery_interval,
    )
    result.manager.compensation_backoff = 0.05
    return result


async def create_effects_table(engine: AsyncEngine) -> None:
    """Create ``r12_effects``."""
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)


async def attempt_count(engine: AsyncEngine) -> int:
    """Return how many times a step's command reached its handler and committed."""
    async with engine.connect() as connection:
        return len((await connection.execute(select(attempts.c.seq))).all())


async def effect_ids(engine: AsyncEngine) -> list[UUID]:
    """Return the ids of the commands that took effect, in the order they did."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(effects.c.command_id).order_by(effects.c.seq))
        return [command_id for (command_id,) in rows]
