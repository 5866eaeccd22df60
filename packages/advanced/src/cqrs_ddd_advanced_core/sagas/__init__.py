"""Sagas (process managers): long-running business processes that react to events.

In progress. What exists: the saga model and its decisions
(:mod:`~cqrs_ddd_advanced_core.sagas.orchestration`: ``Saga``, ``SagaState``,
steps, deterministic command ids, compensation in reverse order, parking) and
the declarative ``SagaBuilder``. Coming: the saga manager that routes events
to instances and stores their state with the commands they send, the saga
repositories (in memory and SQL), ``bootstrap_sagas`` and its recovery
worker, TCC branches, step timeouts and the saga test kit.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.sagas.builder import SagaBuilder
from cqrs_ddd_advanced_core.sagas.orchestration import (
    Compensation,
    HistoryEntry,
    Outgoing,
    Saga,
    SagaDefinitionError,
    SagaError,
    SagaState,
    SagaStatus,
    SagaStepError,
    StepRecord,
    StoredCommand,
    command_id_for,
)

__all__ = [
    "Compensation",
    "HistoryEntry",
    "Outgoing",
    "Saga",
    "SagaBuilder",
    "SagaDefinitionError",
    "SagaError",
    "SagaState",
    "SagaStatus",
    "SagaStepError",
    "StepRecord",
    "StoredCommand",
    "command_id_for",
]
