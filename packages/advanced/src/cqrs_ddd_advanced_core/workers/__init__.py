"""The machinery background workers share: leases, checkpoints, dead letters, wake-ups, a loop.

A worker does a *job* (projecting events into a read model, relaying them,
running due commands) in a :class:`WorkerLoop`. Its state lives in four small
stores, each with one job, bundled as :class:`WorkerStorage`:

* :class:`LeaseStore`: one worker at a time holds a job's :class:`Lease`; its
  epoch is the fencing token that refuses a replaced worker's late writes;
* :class:`CheckpointStore`: the job's checkpoint, moved forward only inside a
  :class:`WorkTransaction` fenced by the lease, together with the work itself;
* :class:`DeadLetterStore`: what the job could not process
  (:class:`DeadLetter`), kept with its error until replayed;
* :class:`WakeupFeed`: the :class:`Wakeup` stores notify when they commit work,
  fed from other processes too where the database can (PostgreSQL ``LISTEN``).

Every worker reports one :class:`WorkerStatus`, which any process can read
from the stores with :func:`read_status`. The projection worker
(:mod:`cqrs_ddd_advanced_core.projections`) is the first job on this machinery.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.domain.exceptions import (
    CheckpointRegressionError,
    LeaseLostError,
    WorkerError,
    WorkHaltedError,
)
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter, DeadLetterStore, dead_letter_of
from cqrs_ddd_advanced_core.workers.lease import Lease, LeaseStore
from cqrs_ddd_advanced_core.workers.loop import Job, WorkerLoop, WorkerState, lease_for_side_work
from cqrs_ddd_advanced_core.workers.progress import CheckpointStore, WorkerRecord, WorkTransaction
from cqrs_ddd_advanced_core.workers.status import (
    EventCounter,
    WorkerStatus,
    count_after,
    read_status,
)
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage, WorkerStorageProvider
from cqrs_ddd_advanced_core.workers.wakeup import Wakeup, WakeupFeed, WakeupListener

__all__ = [
    "CheckpointRegressionError",
    "CheckpointStore",
    "DeadLetter",
    "DeadLetterStore",
    "EventCounter",
    "Job",
    "Lease",
    "LeaseLostError",
    "LeaseStore",
    "Wakeup",
    "WakeupFeed",
    "WakeupListener",
    "WorkHaltedError",
    "WorkTransaction",
    "WorkerError",
    "WorkerLoop",
    "WorkerRecord",
    "WorkerState",
    "WorkerStatus",
    "WorkerStorage",
    "WorkerStorageProvider",
    "count_after",
    "dead_letter_of",
    "lease_for_side_work",
    "read_status",
]
