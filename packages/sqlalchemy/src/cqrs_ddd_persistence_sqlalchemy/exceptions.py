"""Typed errors of the SQLAlchemy persistence package.

The tree::

    CqrsDddError (cqrs_ddd_core.exceptions)
    ├── PersistenceError                 the database refused or failed an operation
    │   ├── LockTimeoutError             a lock was not granted in time (lock_timeout, busy_timeout)
    │   ├── DatabaseUnavailableError     the connection was lost, or could not be made
    │   │   (both also TransientError: they may pass when tried again)
    │   ├── UnreadableStateError         a stored aggregate state does not read back into its class
    │   └── SchemaNotReadyError          the schema is missing or older than this package
    ├── UnsupportedSpecificationError    a specification has no SQL translation
    └── UnsupportedDatabaseError         the database cannot give the framework's guarantees

Driver exceptions never leave the package: adapters translate them here, or to
the core's ``ConcurrencyError`` when they mean a stale version. Each kind of
failure has one type on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from cqrs_ddd_core.exceptions import CqrsDddError, TransientError


class PersistenceError(CqrsDddError):
    """The database refused or failed an operation; ``operation`` says which."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(f"{operation} failed: {detail}")


class LockTimeoutError(PersistenceError, TransientError):
    """A write waited longer than the configured lock timeout for a lock.

    ``lock_timeout`` on PostgreSQL, ``busy_timeout`` on SQLite (whose driver
    says "database is locked"); both set by ``create_engine``. Usually another
    transaction holds a lock for too long (a command that keeps its
    transaction open while it calls out).
    """


class DatabaseUnavailableError(PersistenceError, TransientError):
    """The connection to the database was lost, or could not be made.

    A server restart or failover ends every pooled connection: reads, and
    appends outside a command, are tried again once on a fresh connection
    before this is raised; inside a command the transaction is gone, and
    the command can be sent again (a retry behaviour does so).
    """


class UnreadableStateError(PersistenceError):
    """A state-stored aggregate's row does not read back into its class.

    The stored text is not JSON, or not a JSON object (a damaged row), or no
    longer validates against the aggregate class (a release changed the class
    without migrating the rows). ``aggregate_type`` and ``aggregate_id`` say
    which row.
    """

    def __init__(self, aggregate_type: str, aggregate_id: str, reason: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(f"load {aggregate_type} {aggregate_id!r}", reason)


class SchemaNotReadyError(PersistenceError):
    """The tables are missing or older than this package: run ``upgrade_schema`` first."""


class UnsupportedDatabaseError(CqrsDddError):
    """The engine's database cannot give the framework's guarantees; raised when a store is built.

    An in-memory SQLite database lives in one connection that every task
    would share, so concurrent commands would run inside each other's
    transactions. Use a SQLite file, or the in-memory adapters
    (``InMemoryEventStore``, ``InMemoryRepository``) for tests.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class UnsupportedSpecificationError(CqrsDddError):
    """A specification cannot be translated to SQL (it is evaluated in memory only).

    Only field specifications and their and/or/not combinations (and
    ``SpecificationBuilder``) translate; ``kind`` names the class found and
    ``table`` the read model queried. Raised before any SQL runs.
    """

    def __init__(self, kind: str, table: str) -> None:
        self.kind = kind
        self.table = table
        super().__init__(
            f"{kind} cannot be translated to SQL for the read model {table!r}: "
            "use field specifications combined with and, or and not"
        )
