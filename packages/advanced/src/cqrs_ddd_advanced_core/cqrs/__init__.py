"""Advanced command handling: the event-sourced mediator, retries and conflict resolution.

- ``EventSourcedMediator`` / ``EventSourcedMediatorFactory``: the mediator that
  appends events inside the command's transaction (home: ``event_sourcing``).
- ``RetryBehavior``: runs a command again after transient errors, with
  exponential backoff, jitter, an attempt cap and a time budget.
- ``ConflictBehavior`` and ``ConflictCommandHandler``: run a command again after
  a ``ConcurrencyError``, merging its changes into the fresh aggregate.
- ``ResilientCommandHandler``: a handler that brings both, configured by class
  attributes.
- ``BehaviorPipeline``: behaviours composed into one.
- ``attempts_of(error)``: the attempts attached to the error a retry gave up on.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.cqrs.attempts import AttemptRecord, attempts_of
from cqrs_ddd_advanced_core.cqrs.conflict_behavior import (
    ConflictBehavior,
    ConflictContext,
)
from cqrs_ddd_advanced_core.cqrs.conflict_handler import ConflictCommandHandler
from cqrs_ddd_advanced_core.cqrs.event_sourced_mediator import EventSourcedMediator
from cqrs_ddd_advanced_core.cqrs.factory import EventSourcedMediatorFactory
from cqrs_ddd_advanced_core.cqrs.pipeline import BehaviorPipeline
from cqrs_ddd_advanced_core.cqrs.resilient_handler import ResilientCommandHandler
from cqrs_ddd_advanced_core.cqrs.retry_behavior import NEVER_RETRIED, RetryBehavior

__all__ = [
    "NEVER_RETRIED",
    "AttemptRecord",
    "BehaviorPipeline",
    "ConflictBehavior",
    "ConflictCommandHandler",
    "ConflictContext",
    "EventSourcedMediator",
    "EventSourcedMediatorFactory",
    "ResilientCommandHandler",
    "RetryBehavior",
    "attempts_of",
]
