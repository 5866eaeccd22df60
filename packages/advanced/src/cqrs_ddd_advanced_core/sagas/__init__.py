"""Sagas (process managers): long-running business processes that react to events.

The saga model and its decisions
(:mod:`~cqrs_ddd_advanced_core.sagas.orchestration`: ``Saga``, ``SagaState``,
steps, deterministic command ids, compensation latest first, parking; the
TCC base ``TccSaga``), the declarative ``SagaBuilder``, the ``SagaManager``
that routes events to instances, stores their decisions and runs their
commands, confirmations and compensations, the branch barrier of TCC
(:mod:`~.barrier`), step timeouts and saga deadlines as scheduled commands
(:mod:`~.timeouts`), ``bootstrap_sagas`` with its ``SagaRecoveryWorker``, and
the ``SagaFeed`` that delivers the event log to the manager at least once, and
the repository port (``InMemorySagaRepository``; ``SQLAlchemySagaRepository``
in ``cqrs_ddd_persistence_sqlalchemy``). The guide is the ``README.md`` beside
this module; the saga test kit is ``cqrs_ddd_testing.sagas``.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.sagas.barrier import (
    BarrierError,
    BarrierOutcome,
    BranchBarrier,
    BranchOperation,
    as_branch_operation,
    branch_operation,
)
from cqrs_ddd_advanced_core.sagas.bootstrap import (
    SagaBootstrap,
    SagaRecoveryWorker,
    bootstrap_sagas,
)
from cqrs_ddd_advanced_core.sagas.builder import SagaBuilder
from cqrs_ddd_advanced_core.sagas.feed import FeedReplay, SagaFeed
from cqrs_ddd_advanced_core.sagas.manager import CommandBus, SagaManager
from cqrs_ddd_advanced_core.sagas.orchestration import (
    BranchCommand,
    Compensation,
    HistoryEntry,
    Outgoing,
    Saga,
    SagaDefinitionError,
    SagaError,
    SagaRetryError,
    SagaState,
    SagaStatus,
    SagaStepError,
    StepRecord,
    StoredCommand,
    TccBranch,
    TccSaga,
    UnreadableSagaStateError,
    command_id_for,
    retry_phase,
)
from cqrs_ddd_advanced_core.sagas.repository import SagaRepository

__all__ = [
    "BarrierError",
    "BarrierOutcome",
    "BranchBarrier",
    "BranchCommand",
    "BranchOperation",
    "CommandBus",
    "Compensation",
    "FeedReplay",
    "HistoryEntry",
    "Outgoing",
    "Saga",
    "SagaBootstrap",
    "SagaBuilder",
    "SagaDefinitionError",
    "SagaError",
    "SagaFeed",
    "SagaManager",
    "SagaRecoveryWorker",
    "SagaRepository",
    "SagaRetryError",
    "SagaState",
    "SagaStatus",
    "SagaStepError",
    "StepRecord",
    "StoredCommand",
    "TccBranch",
    "TccSaga",
    "UnreadableSagaStateError",
    "as_branch_operation",
    "bootstrap_sagas",
    "branch_operation",
    "command_id_for",
    "retry_phase",
]
