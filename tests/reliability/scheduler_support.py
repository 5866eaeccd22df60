"""What R11's test and its worker processes share: the command, its effect, the recorders.

``RunOnce`` appends one ``Ran`` event, with an id derived from the schedule id,
to stream ``r11-<schedule id>``; the event carries the database's clock at the
moment the handler ran, so "never early" is judged by the database. Every
handler call is recorded in the history log (op ``run``), and so is every
completion a worker writes into a command's transaction (op ``complete``,
``invoke`` with the fencing token, or ``fail`` when the lease was gone) and
every command whose transaction committed (op ``commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from harness.history import HistoryLog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.domain.exceptions import ScheduleLeaseLostError
from cqrs_ddd_advanced_core.scheduling import ClaimedSchedule, CommandSchedulerService
from cqrs_ddd_core import (
    Command,
    DomainEvent,
    HandlerRegistry,
    Mediator,
    MessageTypeRegistry,
    current_uow,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock as clock_of


class RunOnce(Command):
    """Run once for schedule ``key``, due at ``due_at`` (Unix seconds); take ``work`` seconds."""

    key: str
    due_at: float
    work: float = 0.0


class Ran(DomainEvent):
    """``RunOnce``'s effect: when it was due and when it ran, by the database's clock."""

    key: str
    due_at: float
    ran_at: float


def stream_of(key: str) -> str:
    """Return the stream a schedule's effect goes to."""
    return f"r11-{key}"


def database_clock(engine: AsyncEngine) -> object:
    """Return an expression of the database's clock in Unix seconds."""
    return clock_of(engine.dialect.name == "postgresql")


class RecordingScheduler(SQLAlchemyCommandScheduler):
    """The SQL scheduler, recording each completion written into a command (with its token)."""

    def __init__(self, engine: AsyncEngine, history: HistoryLog | None) -> None:
        super().__init__(engine)
        self.history = history

    async def complete_in_command(self, claim: ClaimedSchedule) -> bool:
        key = str(claim.schedule_id)
        try:
            joined = await super().complete_in_command(claim)
        except ScheduleLeaseLostError:
            if self.history is not None:
                self.history.record("complete", key, "fail", token=claim.lease_token)
            raise
        if self.history is not None:
            self.history.record("complete", key, "invoke", token=claim.lease_token)
        return joined

    async def complete(self, claim: ClaimedSchedule) -> None:
        try:
            await super().complete(claim)
        except ScheduleLeaseLostError:
            self._refused(claim)
            raise

    async def fail(
        self, claim: ClaimedSchedule, error_class: str, message: str, *, retry_in: float | None
    ) -> bool:
        # a run that failed after another worker took its schedule over (its append found
        # the effect written, say) is refused by the fence too: that explains the takeover
        recorded = await super().fail(claim, error_class, message, retry_in=retry_in)
        if not recorded:
            self._refused(claim)
        return recorded

    def _refused(self, claim: ClaimedSchedule) -> None:
        if self.history is not None:
            key = str(claim.schedule_id)
            self.history.record("complete", key, "fail", token=claim.lease_token)


def build_service(
    engine: AsyncEngine,
    history: HistoryLog | None,
    *,
    lease_ttl: float = 30.0,
) -> CommandSchedulerService:
    """Return a scheduler service whose ``RunOnce`` handler appends its effect and records."""
    store = SQLAlchemyEventStore(engine)
    registry = HandlerRegistry()
    clock = database_clock(engine)

    @registry.command_handler(RunOnce)
    async def run_once(command: RunOnce) -> None:
        if history is not None:
            history.record("run", command.key, "invoke")
        uow = current_uow()
        assert isinstance(uow, SQLAlchemyUnitOfWork)
        ran_at = float(await uow.connection.scalar(select(clock)))  # type: ignore[call-overload]
        if command.work:
            await asyncio.sleep(command.work)
        event = Ran(
            key=command.key,
            due_at=command.due_at,
            ran_at=ran_at,
            event_id=uuid5(NAMESPACE_URL, command.key),
        )
        await store.append(stream_of(command.key), [event], expected_version=0)

    mediator = Mediator(registry=registry, uow_factory=partial(SQLAlchemyUnitOfWork, engine))

    async def send(command: Command) -> object:
        response = await mediator.send(command)
        if history is not None and isinstance(command, RunOnce):
            history.record("commit", command.key, "ok")
        return response

    return CommandSchedulerService(
        scheduler=RecordingScheduler(engine, history),
        mediator_send_fn=send,
        message_registry=MessageTypeRegistry([RunOnce]),
        lease_ttl=lease_ttl,
        retry_backoff=0.05,
        max_backoff=0.5,
        max_attempts=20,
    )


async def schedule_all(
    service: CommandSchedulerService, due_times: Sequence[float], *, work: float, concurrency: int
) -> list[UUID]:
    """Schedule one ``RunOnce`` per due time (Unix seconds); return the schedule ids."""
    ids = [uuid4() for _ in due_times]
    gate = asyncio.Semaphore(concurrency)

    async def one(schedule_id: UUID, due_at: float) -> None:
        async with gate:
            await service.schedule(
                RunOnce(key=str(schedule_id), due_at=due_at, work=work),
                datetime.fromtimestamp(due_at, UTC),
                schedule_id=schedule_id,
            )

    await asyncio.gather(*(one(i, due) for i, due in zip(ids, due_times, strict=True)))
    return ids
