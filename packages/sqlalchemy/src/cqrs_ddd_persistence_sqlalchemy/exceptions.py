"""Typed errors of the SQLAlchemy persistence package.

The tree::

    CqrsDddError (cqrs_ddd_core.exceptions)
    └── PersistenceError                 the database refused or failed an operation
        ├── LockTimeoutError             a write waited longer than lock_timeout for a lock
        └── SchemaNotReadyError          the schema is missing or older than this package
    └── UnsupportedSpecificationError    a specification has no SQL translation

Driver exceptions never leave the package: adapters translate them here, or to
the core's ``ConcurrencyError`` when they mean a stale version.
"""

from __future__ import annotations

from cqrs_ddd_core.exceptions import CqrsDddError


class PersistenceError(CqrsDddError):
    """The database refused or failed an operation; ``operation`` says which."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(f"{operation} failed: {detail}")


class LockTimeoutError(PersistenceError):
    """A write waited longer than the configured ``lock_timeout`` for a lock.

    Usually another transaction holds the event store's append lock for too
    long (a command that keeps its transaction open while it calls out).
    """


class SchemaNotReadyError(PersistenceError):
    """The tables are missing or older than this package: run ``upgrade_schema`` first."""


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
