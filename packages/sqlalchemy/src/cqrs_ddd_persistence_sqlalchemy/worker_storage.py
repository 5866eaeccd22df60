"""``SQLAlchemyWorkerStorage``: the four stores of background workers, on one engine."""

from __future__ import annotations

from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, engine_of
from cqrs_ddd_persistence_sqlalchemy.dead_letters import SQLAlchemyDeadLetterStore
from cqrs_ddd_persistence_sqlalchemy.wakeup_feed import SQLAlchemyWakeupFeed
from cqrs_ddd_persistence_sqlalchemy.worker_stores import (
    SQLAlchemyCheckpointStore,
    SQLAlchemyLeaseStore,
)


class SQLAlchemyWorkerStorage(WorkerStorage):
    """Leases, checkpoints, dead letters and wake-ups of workers, in the database of ``source``.

    ``wakeup`` is the one the event store notifies after its appends
    (``SQLAlchemyEventStore.wakeup``); ``SQLAlchemyEventStore.worker_storage()``
    builds this storage with it. Read models written by the workers should
    live in the same database, to commit with their checkpoints.
    """

    def __init__(self, source: EngineSource, *, wakeup: Wakeup | None = None) -> None:
        self.engine = engine_of(source)
        super().__init__(
            leases=SQLAlchemyLeaseStore(self.engine),
            checkpoints=SQLAlchemyCheckpointStore(self.engine),
            letters=SQLAlchemyDeadLetterStore(self.engine),
            wakeups=SQLAlchemyWakeupFeed(self.engine, wakeup or Wakeup()),
        )
