"""Read-model writes held back on a projection batch's connection and sent together.

A projection batch applies up to ``batch_size`` events in one transaction. When
each handler's upsert went to the database on its own, a catch-up paid one
round trip (and, on SQLite, one hop to aiosqlite's thread) per event. Inside a
batch, :class:`SQLAlchemyReadModelStore.upsert` instead queues its row on the
connection; runs of upserts of the same shape go out as one ``executemany``.

The queue is sent, in the order written:

* before any other statement runs on that connection (a ``before_execute``
  listener on that connection alone, for the batch's length), so a handler
  that reads back, or runs SQL of its own, sees every earlier write of the
  batch;
* when the worker flushes the batch: before its checkpoint is written, and at
  the end of each savepoint the worker applies one event in, so an error in a
  queued write is still that event's error.

A batch that rolls back drops its queue. Outside a projection batch (no queue
on the connection) the store writes at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

_KEY = "cqrs_ddd.pending_writes"


class PendingWrites:
    """Statements queued on one connection, sent in order as ``executemany`` runs."""

    __slots__ = ("_runs", "failed")

    def __init__(self) -> None:
        self._runs: list[tuple[Executable, list[dict[str, Any]]]] = []
        self.failed = False
        """True once sending the queue raised: the error was a queued write's."""

    def add(self, statement: Executable, parameters: dict[str, Any]) -> None:
        """Queue ``statement`` with ``parameters`` after everything queued so far."""
        runs = self._runs
        if runs and runs[-1][0] is statement:
            runs[-1][1].append(parameters)
        else:
            runs.append((statement, [parameters]))

    def send(self, connection: Connection) -> None:
        """Execute the queue on ``connection`` (synchronous: runs inside the async bridge)."""
        runs, self._runs = self._runs, []  # emptied first: the listener sees nothing to send
        try:
            for statement, parameters in runs:
                connection.execute(statement, parameters)
        except BaseException:
            self.failed = True
            raise

    def discard(self) -> None:
        """Forget the queue without sending it (the writes' savepoint rolled back)."""
        self._runs = []

    def __bool__(self) -> bool:
        return bool(self._runs)


def pending_writes(connection: AsyncConnection) -> PendingWrites | None:
    """Return the queue of ``connection`` when it belongs to a projection batch, else None."""
    pending: PendingWrites | None = connection.info.get(_KEY)
    return pending


def hold_writes(connection: AsyncConnection) -> PendingWrites:
    """Start queueing read-model writes on ``connection`` (a projection batch's)."""
    pending = connection.info[_KEY] = PendingWrites()
    event.listen(connection.sync_connection, "before_execute", _send_first)
    return pending


def drop_writes(connection: AsyncConnection) -> None:
    """Forget the queue of ``connection`` (the batch ended; the connection goes back)."""
    connection.info.pop(_KEY, None)
    sync_connection = connection.sync_connection
    if sync_connection is not None and event.contains(
        sync_connection, "before_execute", _send_first
    ):
        event.remove(sync_connection, "before_execute", _send_first)


def _send_first(connection: Connection, *_: Any) -> None:
    pending: PendingWrites | None = connection.info.get(_KEY)
    if pending is not None and pending:
        pending.send(connection)
