"""The outbox and inbox ports: messages to publish, and messages already handled.

A state-stored aggregate's events are written, in the command's transaction,
as outbox messages (``SQLAlchemyRepository`` writes them to ``cqrs_outbox``).
An :class:`OutboxStore` hands a relay the messages not yet published, oldest
first, and marks published the ones a broker confirmed, inside the relay's
lease-fenced transaction (``WorkTransaction``), so that a relay that lost its
lease marks nothing. ``SQLAlchemyOutboxStore`` (``cqrs_ddd_persistence_sqlalchemy``)
implements it; the messaging package's ``OutboxTableRelay`` uses it.

An :class:`Inbox` remembers which messages a consumer handled: the consumer
claims a message's id in the transaction its handler writes in, so that a
message delivered again (brokers deliver at least once) is recognised and
acknowledged without a second effect, and a handler that fails rolls the
claim back with its effect. Claims older than a retention window can be
purged: a duplicate arriving later than that is handled again, so the window
must outlast the broker's redelivery horizon. ``InMemoryInbox``
(``cqrs_ddd_advanced_core.adapters.memory``) and ``SQLAlchemyInbox``
(``cqrs_ddd_persistence_sqlalchemy``) implement it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from cqrs_ddd_advanced_core.workers.progress import WorkTransaction


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message of the outbox: its place, id, topic, partition key and JSON document."""

    id: int
    message_id: UUID
    topic: str
    partition_key: str | None
    document: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """The messages not yet published: how many, the newest's place, the oldest's age.

    ``count`` (and the newest and oldest) are the messages a relay may send
    now; ``set_aside`` counts those a relay set aside, and ``held`` the later
    messages of their aggregates, which wait behind them (neither is in
    ``count``).
    """

    count: int
    newest_id: int | None
    oldest_created_at: datetime | None
    set_aside: int = 0
    held: int = 0


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A message the relay set aside after failing on it: its error, attempts and times."""

    id: int
    message_id: UUID
    topic: str
    partition_key: str | None
    message_type: str
    attempts: int
    last_error: str
    failed_at: datetime
    created_at: datetime


def partition_hash(key: str | None) -> int:
    """Return the stable hash a message is partitioned by: CRC-32 of ``key``, in 31 bits.

    The same in every process and on every machine (unlike ``hash``), so that
    a writer can store it with the message and relays can pick their share
    with ``partition_hash % count``. A message without a key hashes to 0.
    """
    if key is None:
        return 0
    return zlib.crc32(key.encode()) & 0x7FFF_FFFF


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition ``index`` of ``count``: the keys whose ``partition_hash % count == index``.

    A relay with several partitions publishes each under a lease of its own,
    so several relay processes share the work while one aggregate's messages
    (one key) still go out one at a time, in order.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count} does not exist")

    def holds(self, key: str | None) -> bool:
        """Return whether messages keyed ``key`` belong to this partition."""
        return partition_hash(key) % self.count == self.index


class OutboxStore(Protocol):
    """Hands out unpublished outbox messages and marks the published ones."""

    async def pending(
        self, *, limit: int, partition: Partition | None = None, excluding: Sequence[int] = ()
    ) -> list[OutboxMessage]:
        """Return up to ``limit`` messages not yet published, in the order they were written.

        With ``partition``, only the messages whose key it holds; ``excluding``
        leaves out the messages of those ids (a page being published, to read
        the next one ahead).
        """
        ...

    async def backlog(self, *, partition: Partition | None = None) -> OutboxBacklog:
        """Count the messages not yet published (of ``partition``), in one query."""
        ...

    async def mark_published(self, transaction: WorkTransaction, ids: Sequence[int]) -> None:
        """Mark the messages ``ids`` published, in the relay's fenced ``transaction``."""
        ...

    async def record_failure(
        self, transaction: WorkTransaction, message_id: int, error: str, *, max_attempts: int
    ) -> bool:
        """Count a failed attempt at ``message_id``; at ``max_attempts`` set it aside.

        A message set aside is no longer pending (the relay goes on past it)
        until an operator puts it back. Returns True when it was set aside.
        """
        ...


class Inbox(Protocol):
    """Remembers the messages each consumer handled (see the module docs)."""

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        """Record ``message_id`` for ``consumer`` in the current unit of work.

        True when it is new (handle it); False when it was handled already.
        """
        ...

    async def purge(self, *, older_than: float) -> int:
        """Forget the claims older than ``older_than`` seconds; return how many."""
        ...


__all__ = [
    "FailedMessage",
    "Inbox",
    "OutboxBacklog",
    "OutboxMessage",
    "OutboxStore",
    "Partition",
    "partition_hash",
]
