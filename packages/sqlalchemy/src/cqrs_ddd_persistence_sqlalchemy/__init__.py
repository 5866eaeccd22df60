"""cqrs-ddd on SQLAlchemy: event store, repositories, outbox, inbox, read models and more.

Also the command scheduler, saga instances and the TCC barrier, and the undo log.

Build an engine with :func:`create_engine` (SQLite file by default,
PostgreSQL with a ``postgresql+asyncpg://`` URL), create the schema once with
:func:`upgrade_schema`, and use :class:`SQLAlchemyUnitOfWork` as the
mediator's unit of work so every store joins the command's transaction.
"""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, engine_of
from cqrs_ddd_persistence_sqlalchemy.engine import DEFAULT_SQLITE_URL, create_engine, read_only
from cqrs_ddd_persistence_sqlalchemy.event_store import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.exceptions import (
    DatabaseUnavailableError,
    LockTimeoutError,
    PersistenceError,
    SchemaNotReadyError,
    UnreadableStateError,
    UnsupportedDatabaseError,
    UnsupportedSpecificationError,
)
from cqrs_ddd_persistence_sqlalchemy.inbox import SQLAlchemyInbox
from cqrs_ddd_persistence_sqlalchemy.migrate import (
    Migration,
    downgrade_schema,
    head_revision,
    migration_history,
    schema_revision,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.outbox import SQLAlchemyOutboxStore, write_outbox
from cqrs_ddd_persistence_sqlalchemy.read_models import SQLAlchemyReadModelStore
from cqrs_ddd_persistence_sqlalchemy.repository import SQLAlchemyRepository
from cqrs_ddd_persistence_sqlalchemy.sagas import (
    SQLAlchemyBranchBarrier,
    SQLAlchemySagaRepository,
    UnreadableSagaStateError,
)
from cqrs_ddd_persistence_sqlalchemy.scheduler import SQLAlchemyCommandScheduler
from cqrs_ddd_persistence_sqlalchemy.snapshots import SQLAlchemySnapshotRepository
from cqrs_ddd_persistence_sqlalchemy.undo_log import SQLAlchemyUndoLog
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.worker_storage import SQLAlchemyWorkerStorage

__all__ = [
    "DEFAULT_SQLITE_URL",
    "DatabaseUnavailableError",
    "EngineSource",
    "LockTimeoutError",
    "Migration",
    "PersistenceError",
    "SQLAlchemyBranchBarrier",
    "SQLAlchemyCommandScheduler",
    "SQLAlchemyEventStore",
    "SQLAlchemyInbox",
    "SQLAlchemyOutboxStore",
    "SQLAlchemyReadModelStore",
    "SQLAlchemyRepository",
    "SQLAlchemySagaRepository",
    "SQLAlchemySnapshotRepository",
    "SQLAlchemyUndoLog",
    "SQLAlchemyUnitOfWork",
    "SQLAlchemyWorkerStorage",
    "SchemaNotReadyError",
    "UnreadableSagaStateError",
    "UnreadableStateError",
    "UnsupportedDatabaseError",
    "UnsupportedSpecificationError",
    "create_engine",
    "downgrade_schema",
    "engine_of",
    "head_revision",
    "migration_history",
    "read_only",
    "schema_revision",
    "upgrade_schema",
    "write_outbox",
]
