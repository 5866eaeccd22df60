"""Translating driver errors into the package's typed errors, at the boundary."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from cqrs_ddd_persistence_sqlalchemy.exceptions import (
    DatabaseUnavailableError,
    LockTimeoutError,
    PersistenceError,
    SchemaNotReadyError,
)

_LOCK_NOT_AVAILABLE = "55P03"
_UNDEFINED_TABLE = "42P01"
_SERVER_GOING_OR_COMING = ("57P01", "57P02", "57P03")
"""Admin shutdown, crash shutdown, cannot connect now (starting up, shutting down)."""
_CONNECTION_EXCEPTION_CLASS = "08"
_SQLITE_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextmanager
def translated_errors(operation: str) -> Iterator[None]:
    """Raise the package's typed errors instead of SQLAlchemy's or the driver's.

    One type per kind of failure, the same on SQLite and PostgreSQL, each
    naming ``operation`` and keeping the original as ``__cause__``:

    * a lock not granted in time (PostgreSQL's ``lock_timeout``, SQLite's
      ``busy_timeout``: "database is locked") is ``LockTimeoutError``;
    * a missing table is ``SchemaNotReadyError``;
    * a connection that was lost or could not be made, or a server shutting
      down or starting up, is ``DatabaseUnavailableError``;
    * anything else from the database or SQLAlchemy is ``PersistenceError``.
    """
    try:
        yield
    except DBAPIError as error:
        raise _translated(
            operation, error.orig, invalidated=error.connection_invalidated
        ) from error
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:  # sent on the driver
        raise _translated(operation, error, invalidated=_closed(error)) from error
    except asyncpg.InternalClientError as error:  # a connection left mid-operation by a loss
        raise _translated(operation, error, invalidated=True) from error
    except sqlite3.Error as error:  # sent on the driver
        raise _translated(operation, error, invalidated=False) from error
    except SQLAlchemyError as error:  # no database error of its own (a transaction cut short)
        cause = _database_error_behind(error)
        if cause is not None:
            raise _translated(
                operation, cause.orig, invalidated=cause.connection_invalidated
            ) from error
        raise PersistenceError(operation, f"{type(error).__name__}: {error}") from error
    except OSError as error:  # the driver could not reach the server
        raise DatabaseUnavailableError(operation, f"{type(error).__name__}: {error}") from error


def is_connection_loss(error: BaseException) -> bool:
    """Return whether ``error`` says the connection it came from can no longer be used.

    The same classification as :func:`translated_errors` gives
    ``DatabaseUnavailableError``, for errors raised on the driver, through
    SQLAlchemy, or already translated.
    """
    if isinstance(error, DatabaseUnavailableError):
        return True
    if isinstance(error, DBAPIError):
        translated = _translated("", error.orig, invalidated=error.connection_invalidated)
    elif isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        translated = _translated("", error, invalidated=_closed(error))
    else:
        return isinstance(error, asyncpg.InternalClientError | OSError)
    return isinstance(translated, DatabaseUnavailableError)


def _closed(error: BaseException) -> bool:
    """Return whether an asyncpg error says its connection is gone."""
    return isinstance(error, asyncpg.ConnectionDoesNotExistError) or (
        isinstance(error, asyncpg.InterfaceError) and "closed" in str(error)
    )


def _translated(
    operation: str, original: BaseException | None, *, invalidated: bool
) -> PersistenceError:
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    detail = str(original).strip() or type(original).__name__
    if (
        invalidated
        or code in _SERVER_GOING_OR_COMING
        or (code is not None and str(code).startswith(_CONNECTION_EXCEPTION_CLASS))
    ):
        return DatabaseUnavailableError(operation, detail)
    if code == _LOCK_NOT_AVAILABLE or _sqlite_code(original) in _SQLITE_BUSY:
        return LockTimeoutError(operation, detail)
    if code == _UNDEFINED_TABLE or "no such table" in detail:
        return SchemaNotReadyError(
            operation, f"{detail} (run upgrade_schema on this database first)"
        )
    return PersistenceError(operation, detail)


def _database_error_behind(error: BaseException) -> DBAPIError | None:
    """Return the database error that ``error`` was raised while handling, if any.

    A statement on a connection whose transaction a lost connection ended
    raises ``PendingRollbackError``; the loss itself is in its context.
    """
    seen: set[int] = set()
    current = error.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, DBAPIError):
            return current
        seen.add(id(current))
        current = current.__context__
    return None


def _sqlite_code(original: BaseException | None) -> int | None:
    code = getattr(original, "sqlite_errorcode", None)
    if code is None:
        return None
    return int(code) & 0xFF  # the primary code, without the extended bits
