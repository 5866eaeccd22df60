"""Translating driver errors into the package's typed errors, at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from cqrs_ddd_persistence_sqlalchemy.exceptions import (
    LockTimeoutError,
    PersistenceError,
    SchemaNotReadyError,
)

_LOCK_NOT_AVAILABLE = "55P03"
_UNDEFINED_TABLE = "42P01"


@contextmanager
def translated_errors(operation: str) -> Iterator[None]:
    """Raise the package's typed errors instead of SQLAlchemy's or the driver's.

    Lock timeouts become ``LockTimeoutError``, a missing table
    ``SchemaNotReadyError``, anything else from the database ``PersistenceError``;
    each names ``operation`` and keeps the original as ``__cause__``.
    """
    try:
        yield
    except DBAPIError as error:
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        detail = str(error.orig).strip() or type(error.orig).__name__
        if code == _LOCK_NOT_AVAILABLE:
            raise LockTimeoutError(operation, detail) from error
        if code == _UNDEFINED_TABLE or "no such table" in detail:
            raise SchemaNotReadyError(
                operation, f"{detail} (run upgrade_schema on this database first)"
            ) from error
        raise PersistenceError(operation, detail) from error
