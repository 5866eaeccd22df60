"""``CommandSchedulerService``: schedule commands for later, cancel them, run those that are due.

The service turns commands into stored rows through the message type registry
and back, and runs due ones through ``mediator_send_fn`` (normally
``mediator.send``). A run is marked done *inside the command's own
transaction* when the command runs in a unit of work the scheduler's store can
join (a ``SQLAlchemyUnitOfWork`` on the same database, or an in-memory unit of
work for the in-memory scheduler): the effect and the completion then commit
together, fenced by the run's lease, so a command never takes effect twice.
Otherwise the run is marked done after the command returned (at least once:
give such commands an idempotency key).

Failures: a transient error (``ConcurrencyError``, ``TransientError``, or a
type in ``retry_on``) is retried with exponential back-off (tenacity's
``wait_exponential`` plus ``wait_random`` jitter of up to ``retry_backoff``) until
``max_attempts`` runs were made; any other
error, a command that no longer decodes, or the last attempt fails it for good:
it becomes a dead letter (:meth:`dead_letters`) that :meth:`retry` re-runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from tenacity import RetryCallState, wait_exponential, wait_random

from cqrs_ddd_advanced_core.domain.exceptions import (
    NaiveDatetimeError,
    ScheduleConfigurationError,
    ScheduleLeaseLostError,
    ScheduleNotFoundError,
)
from cqrs_ddd_advanced_core.scheduling.ports import (
    ClaimedSchedule,
    CommandScheduler,
    MissedRunPolicy,
    NewSchedule,
    RecurringSchedule,
    ScheduleState,
    to_epoch,
)
from cqrs_ddd_advanced_core.scheduling.recurring import (
    check_recurrence,
    first_at_or_after,
    plan_firing,
)
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.scope import CommandScope, joining_commands
from cqrs_ddd_core.exceptions import ConcurrencyError, MessageTypeError, TransientError

logger = logging.getLogger(__name__)

SendFunction = Callable[[Command], Awaitable[Any]]
"""Runs a command (``mediator.send``)."""


def default_owner() -> str:
    """Return a name for this process's worker: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


class CommandSchedulerService:
    """Schedules commands in ``scheduler`` and runs the due ones through ``mediator_send_fn``.

    ``message_registry`` names the command types that may be stored; by
    default, when ``mediator_send_fn`` is a mediator's ``send``, every command
    type the mediator has a handler for. ``lease_ttl`` is how long a worker
    holds a run before another may take it over (renewed while the command
    runs); ``max_attempts``, ``retry_backoff`` and ``max_backoff`` (seconds)
    shape retries of transient failures; ``retry_on`` adds exception types to
    treat as transient.
    """

    def __init__(
        self,
        scheduler: CommandScheduler,
        mediator_send_fn: SendFunction,
        *,
        message_registry: MessageTypeRegistry | None = None,
        lease_ttl: float = 30.0,
        max_attempts: int = 5,
        retry_backoff: float = 1.0,
        max_backoff: float = 300.0,
        retry_on: Sequence[type[BaseException]] = (),
    ) -> None:
        if max_attempts < 1:
            raise ScheduleConfigurationError(f"max_attempts={max_attempts}: must be at least 1")
        if lease_ttl <= 0:
            raise ScheduleConfigurationError(f"lease_ttl={lease_ttl}: must be positive")
        self.scheduler = scheduler
        self.send = mediator_send_fn
        self.message_registry = message_registry or _registry_of(mediator_send_fn)
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.retry_on = tuple(retry_on)
        self._backoff = wait_exponential(multiplier=retry_backoff, max=max_backoff) + wait_random(
            0, retry_backoff
        )

    async def schedule(
        self, command: Command, execute_at: datetime, *, schedule_id: UUID | None = None
    ) -> UUID:
        """Store ``command`` to run at ``execute_at``; return its schedule id.

        ``execute_at`` must be timezone-aware (``NaiveDatetimeError``); a time
        in the past runs at once. The command's type must be in the message
        registry (``UnknownMessageTypeError``), and its fields portable JSON
        (``MessageSerializationError``). Inside a command the schedule commits
        with it; outside, on its own. A given ``schedule_id`` makes scheduling
        idempotent: a second call with the same id keeps the first schedule.
        """
        due_at = _aware(execute_at, "execute_at")
        command_type, payload = self.message_registry.encode(command)
        identifier = schedule_id or uuid4()
        await self.scheduler.add(NewSchedule(identifier, command_type, payload, to_epoch(due_at)))
        return identifier

    async def cancel(self, schedule_id: UUID) -> None:
        """Cancel a pending schedule, so that it never runs.

        Raises ``ScheduleNotFoundError``, or ``ScheduleNotCancellableError``
        when it ran, is running, failed or was cancelled already.
        """
        await self.scheduler.cancel(schedule_id)

    async def get(self, schedule_id: UUID) -> ScheduleState:
        """Return the schedule's state; ``ScheduleNotFoundError`` when there is none."""
        state = await self.scheduler.state(schedule_id)
        if state is None:
            raise ScheduleNotFoundError(schedule_id)
        return state

    async def dead_letters(self, *, limit: int = 100) -> list[ScheduleState]:
        """Return the schedules that failed for good, most recent first."""
        return await self.scheduler.failed(limit=limit)

    async def retry(self, schedule_id: UUID) -> None:
        """Run a dead letter again, now, with a fresh count of attempts."""
        await self.scheduler.retry(schedule_id)

    async def run_now(self, schedule_id: UUID) -> None:
        """Make a pending schedule due now (a failed one: run it again, attempts reset)."""
        await self.scheduler.run_now(schedule_id)

    async def schedule_recurring(
        self,
        name: str,
        command: Command,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        missed: MissedRunPolicy = "run_once",
        grace: timedelta = timedelta(minutes=1),
        start_at: datetime | None = None,
    ) -> None:
        """Run ``command`` on the ``cron`` expression (in ``timezone``) or ``every`` interval.

        ``name`` identifies the schedule; scheduling a name again replaces its
        command and policy, and keeps its next occurrence (and its pause) when
        the recurrence and time zone are the same and no ``start_at`` is given,
        so declaring the schedules at every start of the application loses no
        run.
        ``missed`` says what happens to occurrences more than ``grace`` late
        when a worker comes back: ``"skip"`` them, ``"run_once"`` (the latest)
        or ``"run_all"``. Without ``start_at`` the first occurrence is the first
        after the store's clock when a worker first sees the schedule; with it,
        the first at or after ``start_at``. Each occurrence is a scheduled
        command with an id derived from the name and the instant, which is also
        the occurrence's ``command_id``. ``start_at`` must be timezone-aware.
        """
        seconds = None if every is None else every.total_seconds()
        check_recurrence(cron, seconds, timezone)
        if missed not in ("skip", "run_once", "run_all"):
            raise ScheduleConfigurationError(f"missed={missed!r}: use skip, run_once or run_all")
        start = None if start_at is None else to_epoch(_aware(start_at, "start_at"))
        command_type, payload = self.message_registry.encode(command)
        payload.pop("command_id", None)  # each occurrence gets its own: its schedule id
        recurring = RecurringSchedule(
            name=name,
            command_type=command_type,
            payload=payload,
            cron=cron,
            every=seconds,
            timezone=timezone,
            missed=missed,
            grace=grace.total_seconds(),
            paused=False,
            next_fire_at=None,
        )
        existing = await self.scheduler.recurring(name)
        if start is not None:
            recurring = replace(recurring, next_fire_at=first_at_or_after(recurring, start))
        elif existing is not None and (existing.cron, existing.every, existing.timezone) == (
            cron,
            seconds,
            timezone,
        ):
            # declared again (every deploy does): keep its place and its pause, owe what it owes
            recurring = replace(
                recurring, next_fire_at=existing.next_fire_at, paused=existing.paused
            )
        await self.scheduler.put_recurring(recurring)

    async def recurring(self, name: str) -> RecurringSchedule:
        """Return the recurring schedule ``name``; ``ScheduleNotFoundError`` when there is none."""
        recurring = await self.scheduler.recurring(name)
        if recurring is None:
            raise ScheduleNotFoundError(name)
        return recurring

    async def pause(self, name: str) -> None:
        """Stop firing ``name`` until :meth:`resume` (fired occurrences still run)."""
        await self.scheduler.pause_recurring(name, paused=True)

    async def resume(self, name: str) -> None:
        """Fire ``name`` again, from its next occurrence after now (paused ones are not run)."""
        await self.scheduler.pause_recurring(name, paused=False)

    async def unschedule(self, name: str) -> None:
        """Delete the recurring schedule ``name``; occurrences already fired stay scheduled."""
        await self.scheduler.remove_recurring(name)

    async def fire_recurring(self) -> int:
        """Turn the due occurrences of recurring schedules into scheduled commands."""
        return await self.scheduler.fire_recurring(plan_firing)

    async def run_due(self, *, owner: str | None = None, limit: int = 10) -> int:
        """Claim up to ``limit`` due commands and run them concurrently; return how many.

        Each run is fenced by its lease, renewed while the commands run.
        """
        owner = owner or default_owner()
        claims = await self.scheduler.claim(owner, limit, self.lease_ttl)
        if not claims:
            return 0
        renewal = asyncio.create_task(self._keep_leases(claims), name="scheduler-leases")
        try:
            await asyncio.gather(*(self.run(claim) for claim in claims))
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        return len(claims)

    async def run(self, claim: ClaimedSchedule) -> None:
        """Run one claimed command and record how it went, fenced by the claim's token."""
        where = f"schedule {claim.schedule_id}"
        try:
            command = self.message_registry.decode(claim.command_type, claim.payload, where=where)
        except MessageTypeError as error:
            await self._record_failure(claim, type(error).__qualname__, str(error), None)
            return
        if claim.attempts > self.max_attempts:  # runs that died with their worker count too
            reason = f"{claim.attempts - 1} runs started and none finished (worker stopped)"
            await self._record_failure(claim, "WorkerLostError", reason, None)
            return
        joined: list[bool] = []

        def join(scope: CommandScope) -> None:
            async def complete() -> None:
                joined.append(await self.scheduler.complete_in_command(claim))

            scope.before_commit(complete)

        try:
            with joining_commands(join, causation_id=str(command.command_id)):
                await self.send(command)
        except ScheduleLeaseLostError as lost:
            logger.warning("%s", lost)
            return
        except Exception as error:  # noqa: BLE001 - every failure is recorded, none is lost
            await self._failed(claim, error)
            return
        if not (joined and joined[-1]):
            try:
                await self.scheduler.complete(claim)
            except ScheduleLeaseLostError as lost:  # it ran; another worker will run it again
                logger.warning("%s (the command ran outside the scheduler's transaction)", lost)

    async def _failed(self, claim: ClaimedSchedule, error: Exception) -> None:
        transient = isinstance(error, (ConcurrencyError, TransientError, *self.retry_on))
        retry_in = None
        if transient and claim.attempts < self.max_attempts:
            retry_in = self._backoff(_attempt(claim.attempts))
        await self._record_failure(claim, type(error).__qualname__, str(error), retry_in)

    async def _record_failure(
        self, claim: ClaimedSchedule, error_class: str, message: str, retry_in: float | None
    ) -> None:
        recorded = await self.scheduler.fail(claim, error_class, message, retry_in=retry_in)
        outcome = (
            "its lease had passed to another worker: not recorded, that worker runs it"
            if not recorded
            else "dead letter"
            if retry_in is None
            else f"again in {retry_in:.2f}s"
        )
        logger.warning(
            "scheduled %s (%s) failed on attempt %d (%s: %s); %s",
            claim.command_type,
            claim.schedule_id,
            claim.attempts,
            error_class,
            message,
            outcome,
        )

    async def _keep_leases(self, claims: list[ClaimedSchedule]) -> None:
        held = list(claims)
        while held:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                kept = await self.scheduler.extend(held, self.lease_ttl)
            except Exception:
                logger.warning("renewing the leases of running schedules failed", exc_info=True)
                continue
            held = [claim for claim in held if claim.schedule_id in kept]


def _registry_of(send: SendFunction) -> MessageTypeRegistry:
    registry = MessageTypeRegistry.of_mediator(send)
    if registry is not None:
        return registry
    raise ScheduleConfigurationError(
        "pass message_registry=MessageTypeRegistry([...]) naming the command types to "
        "schedule: mediator_send_fn is not a mediator's send, so they cannot be taken "
        "from its handlers"
    )


def _aware(moment: datetime, field: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise NaiveDatetimeError(field, moment)
    return moment


def _attempt(number: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = number
    return state
