"""``ConflictBehavior``: resolves optimistic-concurrency conflicts by running the command again.

When a command fails with ``ConcurrencyError`` (its aggregate changed since it
was loaded), the behaviour runs the rest of the pipeline again, in a fresh unit
of work, and holds a :class:`ConflictContext` for that attempt, which the
handler asks for (:meth:`ConflictBehavior.conflict_for`): a
``ConflictCommandHandler`` then merges the command's changes into the freshly
loaded aggregate; any other handler simply runs again on the fresh state. The
stale write is never sent again. The context is kept on the behaviour, by
command id, not in ambient state: the command scope is the only ambient object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cqrs_ddd_advanced_core.cqrs.attempts import AttemptRecord, attach_attempts
from cqrs_ddd_core.cqrs.behaviors import Message, NextStep
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.outcome import CommandPhase, phase_of
from cqrs_ddd_core.exceptions import ConcurrencyError, FieldIssue, ValidationError


@dataclass(frozen=True, slots=True)
class ConflictContext:
    """The conflict the current attempt of a command resolves.

    ``command_id`` names the command (a command sent from inside the handler
    does not see its sender's conflict), ``conflict`` is the
    ``ConcurrencyError`` of the previous attempt (its ``stream_id``,
    ``expected_version`` and ``actual_version``) and ``attempt`` the number of
    this attempt, from 2.
    """

    command_id: UUID
    conflict: ConcurrencyError
    attempt: int


class ConflictBehavior:
    """Runs a command again after a ``ConcurrencyError``, up to ``max_retries`` times.

    Each further attempt calls ``next_step()`` (a fresh unit of work) inside a
    :class:`ConflictContext`. Attempts follow each other at once: the new one
    works on the state the winner just committed. A conflict raised after the
    command committed is not retried. Each conflict is logged at INFO with the
    command's type and id, the attempt, the stream and the expected and actual
    versions, and so is each conflict an attempt resolved. When the conflicts
    outlast ``max_retries``, or a resolving attempt fails otherwise (an
    ``UnresolvableConflictError`` of the merge strategy, say), the original
    error is raised with the attempts attached (``attempts_of``). Queries pass
    through.
    """

    def __init__(self, *, max_retries: int = 3, logger: logging.Logger | None = None) -> None:
        if max_retries < 0:
            raise ValidationError(
                "ConflictBehavior", [FieldIssue("max_retries", "must be 0 or more")]
            )
        self.max_retries = max_retries
        self._logger = logger or logging.getLogger("cqrs_ddd_advanced_core.conflict")
        self._resolving: dict[UUID, ConflictContext] = {}

    def conflict_for(self, command: Command) -> ConflictContext | None:
        """Return the conflict the running attempt of ``command`` resolves; None on a first run."""
        return self._resolving.get(command.command_id)

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Run ``next_step``; on a conflict, run it again resolving the conflict."""
        if not isinstance(message, Command):
            return await next_step()
        records: list[AttemptRecord] = []
        context: ConflictContext | None = None
        while True:
            attempt = len(records) + 1
            try:
                result = await self._attempt(next_step, context)
            except ConcurrencyError as error:
                if attempt > self.max_retries or phase_of(error) is CommandPhase.AFTER_COMMIT:
                    self._give_up(error, records, attempt)
                    raise
                records.append(AttemptRecord.of(attempt, error, delay=0.0, kind="conflict"))
                self._log(message, "concurrency conflict", attempt, error)
                context = ConflictContext(message.command_id, error, attempt + 1)
            except Exception as error:
                if records:
                    self._give_up(error, records, attempt)
                raise
            else:
                if context is not None:
                    self._log(message, "resolved concurrency conflict", attempt, context.conflict)
                return result

    async def _attempt(self, next_step: NextStep, context: ConflictContext | None) -> Any:
        if context is None:
            return await next_step()
        self._resolving[context.command_id] = context
        try:
            return await next_step()
        finally:
            del self._resolving[context.command_id]

    def _give_up(self, error: BaseException, records: list[AttemptRecord], attempt: int) -> None:
        attach_attempts(
            error, records, AttemptRecord.of(attempt, error, delay=None, kind="conflict")
        )

    def _log(self, command: Command, what: str, attempt: int, conflict: ConcurrencyError) -> None:
        name = type(command).__qualname__
        self._logger.info(
            "%s of %s %s at attempt %d: stream %r, expected version %d, actual version %d",
            what,
            name,
            command.command_id,
            attempt,
            conflict.stream_id,
            conflict.expected_version,
            conflict.actual_version,
            extra={
                "command_type": name,
                "command_id": str(command.command_id),
                "attempt": attempt,
                "stream_id": conflict.stream_id,
                "expected_version": conflict.expected_version,
                "actual_version": conflict.actual_version,
            },
        )
