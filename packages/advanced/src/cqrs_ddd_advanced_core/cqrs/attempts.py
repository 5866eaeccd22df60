"""The attempts a retrying behaviour made, attached to the error it finally raises.

``RetryBehavior`` and ``ConflictBehavior`` re-raise the original error of the
last attempt, with its type, and attach the record of every attempt they made
(:func:`attempts_of` reads it). When both wrap one command, the records come in
the order the attempts were made: the retries' first, then the conflict
resolutions of the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

AttemptKind = Literal["retry", "conflict"]
"""Which behaviour made an attempt: ``RetryBehavior`` or ``ConflictBehavior``."""

_ATTEMPTS_ATTRIBUTE = "attempts"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One failed attempt of a command: its number, why it failed, what came next.

    ``attempt`` counts from 1 within the behaviour that made it (``kind``);
    ``error_type`` and ``message`` describe its error; ``delay`` is the pause
    before the next attempt in seconds, None when no attempt followed.
    """

    attempt: int
    error_type: str
    message: str
    delay: float | None
    kind: AttemptKind = "retry"

    @classmethod
    def of(
        cls, attempt: int, error: BaseException, *, delay: float | None, kind: AttemptKind
    ) -> AttemptRecord:
        """Return the record of ``attempt``, which failed with ``error``."""
        return cls(attempt, type(error).__qualname__, str(error), delay, kind)


def attempts_of(error: BaseException) -> tuple[AttemptRecord, ...]:
    """Return the attempts recorded on ``error`` (empty when no behaviour retried it)."""
    records = getattr(error, _ATTEMPTS_ATTRIBUTE, ())
    if not isinstance(records, tuple):
        return ()
    return tuple(record for record in records if isinstance(record, AttemptRecord))


def attach_attempts(
    error: BaseException, earlier: Sequence[AttemptRecord], last: AttemptRecord
) -> None:
    """Record on ``error`` the ``earlier`` attempts and the ``last`` one, which raised it.

    When an inner behaviour already recorded its attempts on ``error``, they
    stand for the last attempt and follow ``earlier``. The error's ``attempts``
    attribute holds the tuple; with more than one attempt, a note for tracebacks
    says how many were made.
    """
    inner = attempts_of(error)
    records = (*earlier, *(inner or (last,)))
    setattr(error, _ATTEMPTS_ATTRIBUTE, records)
    if len(records) > 1 and earlier:
        error.add_note(f"gave up after {len(records)} attempts: {_summary(records)}")


def _summary(records: Sequence[AttemptRecord]) -> str:
    return "; ".join(
        f"{record.kind} attempt {record.attempt}: {record.error_type}" for record in records
    )
