"""Wake-ups across processes: PostgreSQL's ``LISTEN``, fed into a worker's :class:`Wakeup`.

On PostgreSQL, appends ``NOTIFY`` the ``cqrs_events`` channel when they commit
(see the event store). While a worker listens, :class:`SQLAlchemyWakeupFeed`
keeps a connection of its own ``LISTEN``ing there and notifies the wake-up on
every notification; when that connection is cut (a restart, a failover) it
reconnects at once, and notifies once more for what it may have missed.

SQLite has no notifications. There the feed watches the file's
``PRAGMA data_version``, which changes whenever another connection (of this
process or another) commits: a read of a counter in the file's header, every
``sqlite_check_interval`` seconds, on the event loop's thread through a private
read-only connection that never waits for a lock. The first read is made before
the block runs, so a commit made in the block is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_persistence_sqlalchemy.channels import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)


class SQLAlchemyWakeupFeed:
    """Keeps ``wakeup`` notified of appends committed by any process (PostgreSQL).

    ``reconnect_interval`` is how long to wait before trying again when the
    listening connection cannot be opened (the worker polls meanwhile);
    ``sqlite_check_interval`` how often a SQLite file's ``data_version`` is read;
    ``channel`` the notification channel (appends' by default; the command
    scheduler listens on its own).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        wakeup: Wakeup,
        *,
        reconnect_interval: float = 1.0,
        sqlite_check_interval: float = 0.05,
        channel: str = NOTIFY_CHANNEL,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.wakeup = wakeup
        self.reconnect_interval = reconnect_interval
        self.sqlite_check_interval = sqlite_check_interval

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[Wakeup]:
        """Yield the wake-up, fed by ``LISTEN`` on PostgreSQL until the block ends.

        Raises the database's error when the first listening connection
        cannot be opened.
        """
        if self.engine.dialect.name == "postgresql":
            listener = _Listener(self.engine, self.wakeup, self.channel)
            await listener.open()
            keeper = listener.keep_open(self.reconnect_interval)
            closing = listener.close
        else:
            path = sqlite_file(self.engine)
            if path is None:  # nothing outside this process can write there
                yield self.wakeup
                return
            # the baseline is read before the block runs: a commit made in it is never missed
            watcher = _DataVersion(path)
            keeper = watcher.watch(self.wakeup, self.sqlite_check_interval, seen=watcher.read())
            closing = watcher.close
        task = asyncio.create_task(keeper, name="wakeup-feed")
        try:
            yield self.wakeup
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await closing()


def sqlite_file(engine: AsyncEngine) -> str | None:
    """Return the absolute path of ``engine``'s SQLite file, or None when it has none."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or engine.url.query:
        return None
    return str(Path(database).absolute())


class _DataVersion:
    """A SQLite file's ``data_version``, read through a private read-only connection."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def read(self) -> int | None:
        """Return the file's ``data_version``; None when it cannot be read now."""
        try:
            self._connection = self._connection or _open_watcher(self._path)
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:  # busy, or the file is being replaced: next time
            return None

    async def watch(self, wakeup: Wakeup, interval: float, *, seen: int | None) -> None:
        """Notify ``wakeup`` whenever another connection commits after ``seen``.

        Without a baseline (``seen`` None) the first version read notifies
        once, for what may have been committed meanwhile.
        """
        while True:
            await asyncio.sleep(interval)
            version = self.read()
            if version is None:
                continue
            if version != seen:
                wakeup.notify()
            seen = version

    async def close(self) -> None:
        """Close the private connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _open_watcher(path: str) -> sqlite3.Connection:
    uri = f"file:{quote(path)}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
    connection.execute("PRAGMA query_only = ON")
    return connection


class _Listener:
    """One ``LISTEN`` connection; :meth:`keep_open` replaces it whenever it is cut."""

    def __init__(self, engine: AsyncEngine, wakeup: Wakeup, channel: str) -> None:
        self._engine = engine
        self._wakeup = wakeup
        self._channel = channel
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._lost = asyncio.Event()

    async def open(self) -> None:
        self._lost = asyncio.Event()
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(self._channel, self._on_notification)
            driver.add_termination_listener(self._on_termination)
        except BaseException:
            await connection.invalidate()
            await connection.close()
            raise
        self._connection, self._driver = connection, driver

    async def keep_open(self, retry_after: float) -> None:
        while True:
            # the termination listener says at once; the check catches a silent death too
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_after):
                    await self._lost.wait()
            if not self._lost.is_set() and not self._closed():
                continue
            await self.close()
            try:
                await self.open()
            except Exception as error:  # noqa: BLE001 - the worker polls meanwhile
                logger.warning("cannot LISTEN for new events (%r); polling", error)
                self._lost.set()
                await asyncio.sleep(retry_after)
                continue
            # notifications may have been missed while the connection was down
            self._wakeup.notify()

    def _closed(self) -> bool:
        return self._driver is None or bool(self._driver.is_closed())

    async def close(self) -> None:
        connection, driver = self._connection, self._driver
        self._connection = self._driver = None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            if not driver.is_closed():
                await driver.remove_listener(self._channel, self._on_notification)
        with contextlib.suppress(Exception):
            await connection.invalidate()  # never hand a LISTENing connection back to the pool
        with contextlib.suppress(Exception):
            await connection.close()

    def _on_notification(self, *_: object) -> None:
        self._wakeup.notify()

    def _on_termination(self, *_: object) -> None:
        self._lost.set()
        self._wakeup.notify()
