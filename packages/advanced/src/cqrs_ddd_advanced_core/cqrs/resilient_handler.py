"""``ResilientCommandHandler``: retries transient errors and resolves conflicts, as configured."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from cqrs_ddd_advanced_core.conflict.merge_strategy import MergeStrategy
from cqrs_ddd_advanced_core.cqrs.conflict_handler import ConflictCommandHandler
from cqrs_ddd_advanced_core.cqrs.retry_behavior import RetryBehavior, Sleep
from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.handlers import TCommand


class ResilientCommandHandler(ConflictCommandHandler[TCommand]):
    """A :class:`ConflictCommandHandler` that also retries transient errors with backoff.

    Configure it with class attributes, as the spec shows:

    - ``max_retries`` (3): retries after the first attempt, for transient errors
      and, separately, for conflicts;
    - ``retry_delay`` (1.0 s) and ``exponential_backoff`` (True): the pause
      before retry *n* is ``retry_delay * 2 ** (n - 1)`` (or ``retry_delay``),
      with 10 % jitter, capped at ``max_delay`` (30 s);
    - ``retry_on`` (none): the transient error types to retry, beyond conflicts
      (a lost connection, a deadlock your driver reports);
    - ``conflict_strategy`` (None): the merge strategy your
      ``resolve_conflict`` uses, as in the spec's example; the framework does
      not call it by itself;
    - ``retry_sleep`` (``asyncio.sleep``): set it on the instance (in
      ``__init__``) to pause differently, for instance not at all in tests.

    Its command runs inside a :class:`RetryBehavior` (outermost: transient
    errors, with backoff) around a :class:`ConflictBehavior` (conflicts, at
    once, resolved through ``resolve_conflict`` or by handling again). Both
    open a fresh unit of work per attempt, never retry a command after it
    committed, and raise the original error with its attempts attached.
    """

    max_retries: ClassVar[int] = 3
    retry_delay: ClassVar[float] = 1.0
    exponential_backoff: ClassVar[bool] = True
    max_delay: ClassVar[float] = 30.0
    retry_on: ClassVar[tuple[type[BaseException], ...]] = ()
    conflict_strategy: ClassVar[MergeStrategy | None] = None
    retry_sleep: Sleep | None = None

    def pipeline_behaviors(self) -> Sequence[PipelineBehavior]:
        """Return the retry behaviour (outermost) and the conflict behaviour, from the settings."""
        return (
            RetryBehavior(
                max_retries=self.max_retries,
                retry_delay=self.retry_delay,
                exponential_backoff=self.exponential_backoff,
                max_delay=self.max_delay,
                retry_on=self.retry_on,
                sleep=self.retry_sleep or asyncio.sleep,
            ),
            self.conflict_behavior,
        )
