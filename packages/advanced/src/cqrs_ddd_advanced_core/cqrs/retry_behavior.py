"""``RetryBehavior``: sends a command again after a transient error, with backoff and jitter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pydantic
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from cqrs_ddd_advanced_core.cqrs.attempts import AttemptRecord, attach_attempts
from cqrs_ddd_advanced_core.domain.exceptions import (
    ConflictResolutionError,
    EventHandlerError,
    EventSourcingConfigurationError,
    UpcastingError,
)
from cqrs_ddd_core.cqrs.behaviors import Message, NextStep
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.outcome import CommandPhase, phase_of
from cqrs_ddd_core.exceptions import (
    ConcurrencyError,
    EventTypeError,
    FieldIssue,
    HandlerError,
    ValidationError,
)

NEVER_RETRIED: tuple[type[BaseException], ...] = (
    ValidationError,
    pydantic.ValidationError,
    EventTypeError,
    UpcastingError,
    ConflictResolutionError,
    HandlerError,
    EventHandlerError,
    EventSourcingConfigurationError,
)
"""Errors no retry can cure, never retried whatever ``retry_on`` says: invalid input,
stored data that does not deserialize (``EventDeserializationError`` and the rest of the
``EventTypeError`` family, ``UpcastingError``), unresolvable conflicts and wiring mistakes."""

Sleep = Callable[[float], Awaitable[Any]]
"""Pauses for the given number of seconds (``asyncio.sleep``; a recorder in tests)."""

_MAX_EXPONENT = 64


class RetryBehavior:
    """Runs a command again, in a fresh unit of work, when it fails with a transient error.

    A pipeline behaviour: each retry calls ``next_step()`` again, which opens a
    new unit of work, so a failed transaction is never reused. An error is
    retried when it is an instance of ``retry_on`` (``ConcurrencyError`` by
    default: the handler reloads the aggregate at its new version) and

    - it is none of :data:`NEVER_RETRIED` (validation and deserialization errors,
      unresolvable conflicts), which fail at once;
    - it was not raised after the command committed (``phase_of(error)`` is
      ``"after_commit"``: the command is stored, a retry would repeat it);
    - if raised by the commit, it is a ``ConcurrencyError`` (nothing written);
      any other commit error leaves the outcome unknown and is not retried.

    ``max_retries`` is the number of retries after the first attempt. The pause
    before retry *n* is :meth:`nominal_delay` (``retry_delay``, doubled per
    retry when ``exponential_backoff``, capped at ``max_delay``) moved by up to
    ``jitter`` of itself either way, and never above ``max_delay``. With a
    ``total_timeout`` (seconds, measured by ``clock`` from the first attempt), a
    retry whose pause would end past the budget is not made; running attempts
    are never interrupted. Each retry is logged at WARNING with the command's
    type and id, the attempt number, the reason and the pause. When it gives up
    it re-raises the last attempt's original error, with the attempts attached
    (:func:`~cqrs_ddd_advanced_core.cqrs.attempts_of`). Queries pass through.
    Built on tenacity's ``AsyncRetrying``; ``sleep``, ``clock`` and ``rng`` are
    injectable so that tests neither sleep nor depend on chance.
    """

    def __init__(
        self,
        *,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        exponential_backoff: bool = True,
        max_delay: float = 30.0,
        jitter: float = 0.1,
        total_timeout: float | None = None,
        retry_on: Sequence[type[BaseException]] = (ConcurrencyError,),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        _check_settings(max_retries, retry_delay, max_delay, jitter, total_timeout)
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.exponential_backoff = exponential_backoff
        self.max_delay = max_delay
        self.jitter = jitter
        self.total_timeout = total_timeout
        self.retry_on = tuple(retry_on)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._logger = logger or logging.getLogger("cqrs_ddd_advanced_core.retry")

    def nominal_delay(self, retry: int) -> float:
        """Return the pause before retry number ``retry`` (from 1), without jitter."""
        if not self.exponential_backoff:
            return min(self.retry_delay, self.max_delay)
        exponent = min(retry - 1, _MAX_EXPONENT)
        return min(self.retry_delay * 2.0**exponent, self.max_delay)

    def delays(self) -> tuple[float, ...]:
        """Return the nominal pause before each of the ``max_retries`` retries, in order."""
        return tuple(self.nominal_delay(retry) for retry in range(1, self.max_retries + 1))

    def compute_delay(self, retry: int) -> float:
        """Return the pause before retry ``retry``: its nominal delay with jitter applied.

        The result lies in ``nominal * (1 - jitter) .. nominal * (1 + jitter)``,
        clipped to ``max_delay``; jitter is uniform in that band.
        """
        nominal = self.nominal_delay(retry)
        jittered = nominal * (1.0 + self.jitter * self._rng.uniform(-1.0, 1.0))
        return max(0.0, min(jittered, self.max_delay))

    def is_retryable(self, error: BaseException) -> bool:
        """Return whether ``error`` may be retried (see the class docstring)."""
        if not isinstance(error, Exception) or isinstance(error, NEVER_RETRIED):
            return False
        phase = phase_of(error)
        if phase is CommandPhase.AFTER_COMMIT:
            return False
        if phase is CommandPhase.COMMIT and not isinstance(error, ConcurrencyError):
            return False
        return isinstance(error, self.retry_on)

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Run ``next_step``, again after each retryable failure, until success or giving up."""
        if not isinstance(message, Command):
            return await next_step()
        records: list[AttemptRecord] = []
        retrying = self._retrying(message, records)

        async def attempt() -> Any:  # a coroutine function, which tenacity awaits
            return await next_step()

        try:
            return await retrying(attempt)
        except Exception as error:
            last = AttemptRecord.of(len(records) + 1, error, delay=None, kind="retry")
            attach_attempts(error, records, last)
            raise

    def _retrying(self, command: Command, records: list[AttemptRecord]) -> AsyncRetrying:
        """Return tenacity's loop for one send of ``command``, recording retries in ``records``.

        A fresh one per send: tenacity keeps per-call state on the object.
        """
        started = self._clock()

        def out_of_attempts_or_time(state: RetryCallState) -> bool:
            if state.attempt_number > self.max_retries:
                return True
            if self.total_timeout is None:
                return False
            return self._clock() - started + state.upcoming_sleep > self.total_timeout

        def before_sleep(state: RetryCallState) -> None:
            error, delay = _error_of(state), state.upcoming_sleep
            records.append(AttemptRecord.of(state.attempt_number, error, delay=delay, kind="retry"))
            self._log_retry(command, state.attempt_number, error, delay)

        return AsyncRetrying(
            sleep=self._sleep,
            stop=out_of_attempts_or_time,
            wait=lambda state: self.compute_delay(state.attempt_number),
            retry=retry_if_exception(self.is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _log_retry(
        self, command: Command, attempt: int, error: BaseException, delay: float
    ) -> None:
        name = type(command).__qualname__
        self._logger.warning(
            "retrying %s %s: attempt %d of %d failed with %s: %s; next attempt in %.3f s",
            name,
            command.command_id,
            attempt,
            self.max_retries + 1,
            type(error).__qualname__,
            error,
            delay,
            extra={
                "command_type": name,
                "command_id": str(command.command_id),
                "attempt": attempt,
                "reason": type(error).__qualname__,
                "delay": delay,
            },
        )


def _error_of(state: RetryCallState) -> BaseException:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    assert error is not None  # noqa: S101 - tenacity retries only failed attempts here
    return error


def _check_settings(
    max_retries: int,
    retry_delay: float,
    max_delay: float,
    jitter: float,
    total_timeout: float | None,
) -> None:
    issues = [
        FieldIssue(field, reason)
        for field, failed, reason in (
            ("max_retries", max_retries < 0, "must be 0 or more"),
            ("retry_delay", retry_delay < 0, "must be 0 or more seconds"),
            ("max_delay", max_delay < 0, "must be 0 or more seconds"),
            ("jitter", not 0 <= jitter <= 1, "must be a fraction between 0 and 1"),
            (
                "total_timeout",
                total_timeout is not None and total_timeout <= 0,
                "must be a positive number of seconds",
            ),
        )
        if failed
    ]
    if issues:
        raise ValidationError("RetryBehavior", issues)
