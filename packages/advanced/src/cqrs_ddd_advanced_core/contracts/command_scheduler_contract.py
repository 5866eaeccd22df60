"""The contract every ``CommandScheduler`` implementation passes, with the service and worker.

Subclass :class:`CommandSchedulerContract` in a test module and provide a
``scheduler_kit`` fixture: a fresh :class:`SchedulerKit` holding the scheduler
under test, an event store and a unit-of-work factory the scheduler joins
(``InMemoryUnitOfWork`` for the in-memory scheduler, ``SQLAlchemyUnitOfWork``
on the same database for the SQL one). The suite runs real commands through
a core ``Mediator``: each :class:`Effect` appends one event to its own stream
in the command's unit of work, so "the effect happened once" is "the stream
holds one event".

What users rely on: nothing runs before its time (by the store's clock); each
due command runs once; a cancelled command never runs; scheduling inside a
command commits or rolls back with it; claims never overlap; a run whose
lease passed to another worker commits nothing; transient failures are retried
and other failures become dead letters that can be re-run; a stored command
that no longer decodes becomes a dead letter, not a crash; the worker starts,
wakes for new work and stops cleanly; recurring schedules fire as their
missed-run policy says. Time is real: the suite schedules a fraction of a
second ahead and waits, for at most :data:`DEADLINE`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from cqrs_ddd_advanced_core.domain.exceptions import (
    NaiveDatetimeError,
    ScheduleLeaseLostError,
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
    ScheduleNotRunnableError,
)
from cqrs_ddd_advanced_core.scheduling import (
    CommandScheduler,
    CommandSchedulerService,
    CommandSchedulerWorker,
    MissedRunPolicy,
    RecurringSchedule,
)
from cqrs_ddd_core.cqrs.event_dispatcher import EventDispatcher
from cqrs_ddd_core.cqrs.mediator import Mediator
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError, UnknownMessageTypeError
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory

DEADLINE = 10.0
"""How long the suite waits, at most, for something that should happen soon."""

SOON = 0.4
"""Seconds ahead the suite schedules what must not run yet."""


class Effect(Command):
    """Append one ``EffectHappened`` to stream ``effect-<key>``; fail ``failures`` times first."""

    key: str
    failures: int = 0
    transient: bool = True
    pause: float = 0.0
    then: str | None = None
    """After committing, an event handler sends ``Effect(key=then)``: a follow-up command."""


class Unrelated(Command):
    """A command type the default registry of the suite's mediator does not handle."""

    note: str = ""


class EffectHappened(DomainEvent):
    """What an :class:`Effect` leaves in its stream."""

    key: str
    then: str | None = None


class PermanentFailureError(Exception):
    """An error the scheduler does not retry."""


@dataclass
class SchedulerKit:
    """What an adapter gives the suite: the scheduler, an event store and its unit of work."""

    scheduler: CommandScheduler
    event_store: EventStore
    uow_factory: UnitOfWorkFactory
    calls: dict[str, int] = field(default_factory=dict)
    command_ids: list[UUID] = field(default_factory=list)

    def mediator(self) -> Mediator:
        """Return a mediator whose ``Effect`` handler appends in the command's unit of work."""
        registry = HandlerRegistry()
        dispatcher = EventDispatcher(on_error="raise")
        mediator = Mediator(
            registry=registry, uow_factory=self.uow_factory, event_dispatcher=dispatcher
        )

        @registry.command_handler(Effect)
        async def effect(command: Effect) -> CommandResponse[None]:
            self.command_ids.append(command.command_id)
            made = self.calls[command.key] = self.calls.get(command.key, 0) + 1
            if made <= command.failures:
                if command.transient:
                    raise ConcurrencyError(
                        f"effect-{command.key}", expected_version=0, actual_version=1
                    )
                raise PermanentFailureError(f"{command.key} cannot be done")
            if command.pause:
                await asyncio.sleep(command.pause)
            happened = EffectHappened(key=command.key, then=command.then)
            await self.event_store.append(f"effect-{command.key}", [happened], expected_version=0)
            return CommandResponse(result=None, events=(happened,))

        @dispatcher.handles(EffectHappened)
        async def follow_up(event: EffectHappened) -> None:
            if event.then is not None:
                await mediator.send(Effect(key=event.then))

        return mediator

    def service(self, **settings: Any) -> CommandSchedulerService:
        """Return a service running the kit's commands through :meth:`mediator`."""
        settings.setdefault("retry_backoff", 0.05)
        settings.setdefault("max_backoff", 0.1)
        return CommandSchedulerService(
            scheduler=self.scheduler, mediator_send_fn=self.mediator().send, **settings
        )

    async def effects(self, key: str) -> int:
        """Return how many times ``key``'s effect was committed."""
        return len(await self.event_store.load_stream(f"effect-{key}"))


def state_of(worker: CommandSchedulerWorker) -> str:
    """Return the worker's state (a function, so that type checkers do not pin it)."""
    return worker.state


def later(seconds: float) -> datetime:
    """Return an aware time ``seconds`` from now."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` is true; ``TimeoutError`` after :data:`DEADLINE`."""
    async with asyncio.timeout(DEADLINE):
        while not await check():  # noqa: ASYNC110 - polling a store: there is no event to await
            await asyncio.sleep(0.02)


async def run_until_done(service: CommandSchedulerService, schedule_id: UUID) -> None:
    """Run due commands until ``schedule_id`` is done or failed."""

    async def finished() -> bool:
        await service.run_due(owner="contract")
        return (await service.get(schedule_id)).status in ("done", "failed")

    await eventually(finished)


class CommandSchedulerContract:
    """Behaviour shared by every command scheduler, through the service and the worker."""

    async def test_a_schedule_is_pending_until_its_time_then_runs_once(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        due = later(SOON)
        schedule_id = await service.schedule(command=Effect(key="a"), execute_at=due)

        state = await service.get(schedule_id)
        assert (state.status, state.attempts, state.command_type) == ("pending", 0, "Effect")
        assert abs((state.due_at - due).total_seconds()) < 0.001
        assert await service.run_due() == 0  # not yet
        assert await scheduler_kit.effects("a") == 0

        await run_until_done(service, schedule_id)
        assert datetime.now(UTC) >= due
        state = await service.get(schedule_id)
        assert (state.status, state.attempts) == ("done", 1)
        assert state.finished_at is not None
        assert state.finished_at >= state.due_at
        assert await scheduler_kit.effects("a") == 1
        assert await service.run_due() == 0  # never again

    async def test_a_time_in_the_past_runs_at_once(self, scheduler_kit: SchedulerKit) -> None:
        service = scheduler_kit.service()
        schedule_id = await service.schedule(command=Effect(key="past"), execute_at=later(-3600))
        assert await service.run_due() == 1
        assert (await service.get(schedule_id)).status == "done"
        assert await scheduler_kit.effects("past") == 1

    async def test_bad_input_is_refused_before_anything_is_stored(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        with pytest.raises(NaiveDatetimeError, match="execute_at"):
            await service.schedule(command=Effect(key="n"), execute_at=datetime(2030, 1, 1))
        with pytest.raises(UnknownMessageTypeError, match="Unrelated"):
            await service.schedule(command=Unrelated(), execute_at=later(-1))
        with pytest.raises(ScheduleNotFoundError):
            await service.get(uuid4())
        assert await scheduler_kit.scheduler.seconds_until_due() is None

    async def test_a_cancelled_command_never_runs(self, scheduler_kit: SchedulerKit) -> None:
        service = scheduler_kit.service()
        schedule_id = await service.schedule(command=Effect(key="c"), execute_at=later(0.05))
        await service.cancel(schedule_id)
        await asyncio.sleep(0.1)

        assert await service.run_due() == 0
        state = await service.get(schedule_id)
        assert state.status == "cancelled"
        assert state.finished_at is not None
        assert await scheduler_kit.effects("c") == 0
        with pytest.raises(ScheduleNotCancellableError, match="cancelled"):
            await service.cancel(schedule_id)
        with pytest.raises(ScheduleNotFoundError):
            await service.cancel(uuid4())

    async def test_run_now_makes_a_pending_command_due_at_once_and_refuses_one_that_ran(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        # given a command due in an hour
        service = scheduler_kit.service()
        schedule_id = await service.schedule(command=Effect(key="now"), execute_at=later(3600))
        assert await service.run_due() == 0
        # when an operator runs it now
        await service.run_now(schedule_id)
        # then it runs at the next round, once, and cannot be run now again
        assert (await service.get(schedule_id)).due_at <= datetime.now(UTC)
        assert await service.run_due() == 1
        assert await scheduler_kit.effects("now") == 1
        with pytest.raises(ScheduleNotRunnableError, match="done") as raised:
            await service.run_now(schedule_id)
        assert raised.value.schedule_id == schedule_id
        with pytest.raises(ScheduleNotFoundError):
            await service.run_now(uuid4())

    async def test_a_command_that_ran_cannot_be_cancelled(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        schedule_id = await service.schedule(command=Effect(key="ran"), execute_at=later(-1))
        await service.run_due()
        with pytest.raises(ScheduleNotCancellableError, match="done") as raised:
            await service.cancel(schedule_id)
        assert raised.value.schedule_id == schedule_id

    async def test_scheduling_with_a_given_id_is_idempotent(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        schedule_id = uuid4()
        first = await service.schedule(Effect(key="i"), later(-1), schedule_id=schedule_id)
        second = await service.schedule(Effect(key="other"), later(-1), schedule_id=schedule_id)
        assert first == second == schedule_id
        assert await service.run_due() == 1
        assert (await scheduler_kit.effects("i"), await scheduler_kit.effects("other")) == (1, 0)

    async def test_scheduling_inside_a_command_commits_and_rolls_back_with_it(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        registry = HandlerRegistry()
        scheduled: list[UUID] = []

        class Plan(Command):
            key: str
            fail: bool = False

        service = scheduler_kit.service(message_registry=MessageTypeRegistry([Effect]))

        @registry.command_handler(Plan)
        async def plan(command: Plan) -> None:
            scheduled.append(await service.schedule(Effect(key=command.key), later(-1)))
            if command.fail:
                raise PermanentFailureError("the planning command fails")

        mediator = Mediator(registry=registry, uow_factory=scheduler_kit.uow_factory)
        await mediator.send(Plan(key="kept"))
        with pytest.raises(PermanentFailureError):
            await mediator.send(Plan(key="dropped", fail=True))

        assert (await service.get(scheduled[0])).status == "pending"
        assert await scheduler_kit.scheduler.state(scheduled[1]) is None
        assert await service.run_due() == 1
        assert await scheduler_kit.effects("kept") == 1

    async def test_cancelling_inside_a_command_rolls_back_with_it(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        registry = HandlerRegistry()
        service = scheduler_kit.service(message_registry=MessageTypeRegistry([Effect]))
        schedule_id = await service.schedule(Effect(key="kept-alive"), later(60))

        class Abandon(Command):
            pass

        @registry.command_handler(Abandon)
        async def abandon(command: Abandon) -> None:
            await service.cancel(schedule_id)
            raise PermanentFailureError("changed its mind")

        with pytest.raises(PermanentFailureError):
            await Mediator(registry=registry, uow_factory=scheduler_kit.uow_factory).send(Abandon())
        assert (await service.get(schedule_id)).status == "pending"

    async def test_claims_never_overlap_and_respect_the_limit(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        for number in range(12):
            await service.schedule(Effect(key=f"o{number}"), later(-1))
        scheduler = scheduler_kit.scheduler
        batches = await asyncio.gather(
            *(scheduler.claim(f"worker-{number}", 5, 30.0) for number in range(4))
        )
        claimed = [claim.schedule_id for batch in batches for claim in batch]
        assert all(len(batch) <= 5 for batch in batches)
        assert len(claimed) == len(set(claimed)) == 12
        assert {(await service.get(schedule_id)).status for schedule_id in claimed} == {"running"}

    async def test_a_worker_whose_lease_passed_to_another_commits_nothing(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        scheduler = scheduler_kit.scheduler
        schedule_id = await service.schedule(Effect(key="fenced"), later(-1))
        (stale,) = await scheduler.claim("slow-worker", 1, 0.2)

        async def taken_over() -> bool:
            return bool(await scheduler.claim("fresh-worker", 1, 30.0))

        await eventually(taken_over)
        assert await scheduler.extend([stale], 30.0) == set()
        await service.run(stale)  # the slow worker runs it late: its transaction rolls back
        assert await scheduler_kit.effects("fenced") == 0
        with pytest.raises(ScheduleLeaseLostError):
            await scheduler.complete(stale)
        assert not await scheduler.fail(stale, "Late", "too late", retry_in=None)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts) == ("running", 2)

    async def test_an_expired_run_is_taken_over_and_runs_once(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service(lease_ttl=0.3)
        schedule_id = await service.schedule(Effect(key="orphan"), later(-1))
        await scheduler_kit.scheduler.claim("dead-worker", 1, 0.2)  # and it never finishes
        await run_until_done(service, schedule_id)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts) == ("done", 2)
        assert await scheduler_kit.effects("orphan") == 1

    async def test_transient_failures_are_retried_with_back_off(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service(max_attempts=5)
        schedule_id = await service.schedule(Effect(key="flaky", failures=2), later(-1))
        await run_until_done(service, schedule_id)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts) == ("done", 3)
        assert state.error_class == "ConcurrencyError"
        assert await scheduler_kit.effects("flaky") == 1

    async def test_a_permanent_failure_is_a_dead_letter_that_can_be_rerun(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        schedule_id = await service.schedule(
            Effect(key="broken", failures=1, transient=False), later(-1)
        )
        await run_until_done(service, schedule_id)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts, state.error_class) == (
            "failed",
            1,
            "PermanentFailureError",
        )
        failure = state.failure()
        assert failure is not None
        assert "broken cannot be done" in str(failure)
        assert [letter.schedule_id for letter in await service.dead_letters()] == [schedule_id]

        await service.retry(schedule_id)
        await run_until_done(service, schedule_id)
        assert (await service.get(schedule_id)).status == "done"
        assert await service.dead_letters() == []
        assert await scheduler_kit.effects("broken") == 1

    async def test_transient_failures_stop_after_the_configured_attempts(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service(max_attempts=2)
        schedule_id = await service.schedule(Effect(key="hopeless", failures=9), later(-1))
        await run_until_done(service, schedule_id)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts, state.error_class) == (
            "failed",
            2,
            "ConcurrencyError",
        )

    async def test_a_stored_command_that_no_longer_decodes_is_a_dead_letter(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        writer = scheduler_kit.service(message_registry=MessageTypeRegistry([Effect, Unrelated]))
        gone = await writer.schedule(Unrelated(note="x"), later(-1))
        reshaped = await writer.schedule(Effect(key="reshaped"), later(-1))

        class ReshapedEffect(Command):
            key: int  # a later release changed the field's type
            reason: str

        registry = MessageTypeRegistry()
        registry.register(ReshapedEffect, name="Effect")
        reader = scheduler_kit.service(message_registry=registry)
        assert await reader.run_due() == 2

        unknown = await reader.get(gone)
        assert (unknown.status, unknown.error_class) == ("failed", "UnknownMessageTypeError")
        assert "Unrelated" in (unknown.last_error or "")
        malformed = await reader.get(reshaped)
        assert (malformed.status, malformed.error_class) == (
            "failed",
            "MessageDeserializationError",
        )
        assert "reason" in (malformed.last_error or "")

    async def test_the_worker_runs_what_falls_due_and_stops_cleanly(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        worker = CommandSchedulerWorker(service, poll_interval=60.0)
        await worker.start()
        try:
            # scheduled after the worker went to sleep for its 60 s poll: a wake-up brings it
            due = later(0.2)
            schedule_id = await service.schedule(Effect(key="w"), due)

            async def ran() -> bool:
                return await scheduler_kit.effects("w") == 1

            await eventually(ran)
            assert (await service.get(schedule_id)).status == "done"
            assert (worker.running, state_of(worker)) == (True, "running")
        finally:
            await worker.stop()
        assert (worker.running, state_of(worker)) == (False, "stopped")
        assert worker.runs >= 1
        await worker.stop()  # stopping twice is harmless

    async def test_recurring_occurrences_missed_follow_the_policy(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        # ten occurrences came while no worker was up, all older than the grace
        start = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=30)
        policies: tuple[MissedRunPolicy, ...] = ("skip", "run_once", "run_all")
        for policy in policies:
            await service.schedule_recurring(
                f"every-minute-{policy}",
                Effect(key=f"r-{policy}"),
                every=timedelta(minutes=1),
                missed=policy,
                grace=timedelta(seconds=10),
                start_at=start,
            )
        assert await service.fire_recurring() == 0 + 1 + 10
        assert await service.fire_recurring() == 0  # each occurrence fires once
        for policy in ("skip", "run_once", "run_all"):
            recurring = await service.recurring(f"every-minute-{policy}")
            assert recurring.next_fire_at is not None
            assert recurring.next_fire_at > datetime.now(UTC).timestamp()

    async def test_a_paused_schedule_does_not_fire_until_resumed(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        await service.schedule_recurring(
            "paused",
            Effect(key="p"),
            every=timedelta(minutes=1),
            missed="run_all",
            start_at=datetime.now(UTC) - timedelta(minutes=5),
        )
        await service.pause("paused")
        assert await service.fire_recurring() == 0
        await service.resume("paused")
        assert await service.fire_recurring() == 0  # the paused occurrences are not owed
        resumed = await service.recurring("paused")
        assert resumed.next_fire_at is not None
        assert not resumed.paused
        await service.unschedule("paused")
        with pytest.raises(ScheduleNotFoundError):
            await service.recurring("paused")

    async def test_a_command_sent_after_the_scheduled_one_committed_is_its_own(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        schedule_id = await service.schedule(Effect(key="first", then="follow-up"), later(-1))
        assert await service.run_due() == 1
        assert (await service.get(schedule_id)).status == "done"
        # the event handler's command committed on its own, not joined to the schedule
        assert await scheduler_kit.effects("first") == 1
        assert await scheduler_kit.effects("follow-up") == 1

    async def test_a_worker_retries_after_the_back_off_not_after_the_lease(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service(lease_ttl=30.0)
        worker = CommandSchedulerWorker(service, poll_interval=60.0)
        await worker.start()
        try:
            schedule_id = await service.schedule(Effect(key="soon", failures=1), later(-1))

            async def done() -> bool:
                return (await service.get(schedule_id)).status == "done"

            await eventually(done)  # within DEADLINE: far less than the 30 s lease
        finally:
            await worker.stop()
        assert (await service.get(schedule_id)).attempts == 2

    async def test_retry_on_makes_more_errors_transient(self, scheduler_kit: SchedulerKit) -> None:
        service = scheduler_kit.service(retry_on=(PermanentFailureError,))
        schedule_id = await service.schedule(
            Effect(key="listed", failures=1, transient=False), later(-1)
        )
        await run_until_done(service, schedule_id)
        state = await service.get(schedule_id)
        assert (state.status, state.attempts, state.error_class) == (
            "done",
            2,
            "PermanentFailureError",
        )

    async def test_the_worker_goes_on_after_a_dead_letter(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        writer = scheduler_kit.service(message_registry=MessageTypeRegistry([Effect, Unrelated]))
        gone = await writer.schedule(Unrelated(), later(-1))
        broken = await writer.schedule(Effect(key="b", failures=1, transient=False), later(-1))
        fine = await writer.schedule(Effect(key="fine"), later(-1))
        worker = CommandSchedulerWorker(scheduler_kit.service(), poll_interval=60.0)
        await worker.start()
        try:

            async def fine_done() -> bool:
                return (await writer.get(fine)).status == "done"

            await eventually(fine_done)
        finally:
            await worker.stop()
        assert (await writer.get(gone)).status == "failed"
        assert (await writer.get(broken)).status == "failed"
        assert worker.state == "stopped"

    async def test_stop_lets_the_commands_in_flight_finish(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        worker = CommandSchedulerWorker(service, poll_interval=60.0)
        await worker.start()
        schedule_id = await service.schedule(Effect(key="slow", pause=0.3), later(-1))

        async def started() -> bool:
            return scheduler_kit.calls.get("slow", 0) == 1

        await eventually(started)
        await worker.stop()
        assert (await service.get(schedule_id)).status == "done"
        assert await scheduler_kit.effects("slow") == 1

    async def test_stop_cancels_what_runs_past_cancel_after_and_commits_none_of_it(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        worker = CommandSchedulerWorker(service, poll_interval=60.0)
        await worker.start()
        schedule_id = await service.schedule(Effect(key="endless", pause=30.0), later(-1))

        async def started() -> bool:
            return scheduler_kit.calls.get("endless", 0) == 1

        await eventually(started)
        async with asyncio.timeout(DEADLINE):
            await worker.stop(cancel_after=0.1)
        assert not worker.running
        state = await service.get(schedule_id)
        assert state.status == "running"  # taken over by a worker once its lease expires
        assert await scheduler_kit.effects("endless") == 0

    async def test_a_naive_start_at_is_refused(self, scheduler_kit: SchedulerKit) -> None:
        service = scheduler_kit.service()
        with pytest.raises(NaiveDatetimeError, match="start_at"):
            await service.schedule_recurring(
                "naive", Effect(key="n"), every=timedelta(minutes=1), start_at=datetime(2030, 1, 1)
            )
        assert await scheduler_kit.scheduler.recurring("naive") is None

    async def test_declaring_a_recurring_schedule_again_keeps_what_it_owes(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        start = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=30)
        await service.schedule_recurring(
            "owed",
            Effect(key="owed"),
            every=timedelta(minutes=1),
            missed="run_all",
            start_at=start,
        )
        # the application restarts and declares its schedules again, without start_at
        await service.schedule_recurring(
            "owed", Effect(key="owed"), every=timedelta(minutes=1), missed="run_all"
        )
        assert await service.fire_recurring() == 10

    async def test_each_occurrence_is_its_own_command(self, scheduler_kit: SchedulerKit) -> None:
        service = scheduler_kit.service()
        start = datetime.now(UTC) - timedelta(minutes=3) + timedelta(seconds=30)
        await service.schedule_recurring(
            "distinct",
            Effect(key="d"),
            every=timedelta(minutes=1),
            missed="run_all",
            start_at=start,
        )
        assert await service.fire_recurring() == 3
        claims = await scheduler_kit.scheduler.claim("contract", 10, 30.0)
        for claim in claims:
            await service.run(claim)
        assert sorted(scheduler_kit.command_ids) == sorted(claim.schedule_id for claim in claims)

    async def test_a_recurring_schedule_that_cannot_fire_is_paused_and_stops_nothing_else(
        self, scheduler_kit: SchedulerKit
    ) -> None:
        service = scheduler_kit.service()
        await scheduler_kit.scheduler.put_recurring(
            RecurringSchedule(
                name="broken",
                command_type="Effect",
                payload={"key": "never"},
                cron="0 9 * * *",
                every=None,
                timezone="Mars/Olympus",  # written by a host that knew it, or by hand
                missed="run_all",
                grace=60.0,
                paused=False,
                next_fire_at=None,
            )
        )
        fine = await service.schedule(Effect(key="unhindered"), later(-1))
        worker = CommandSchedulerWorker(service, poll_interval=60.0)
        await worker.start()
        try:

            async def fine_done() -> bool:
                return (await service.get(fine)).status == "done"

            await eventually(fine_done)
        finally:
            await worker.stop()
        assert (await service.recurring("broken")).paused
