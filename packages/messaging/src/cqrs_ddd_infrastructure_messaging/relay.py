"""The event-log relay: publishes every committed event to a broker, in log order (in progress).

:class:`EventLogRelay` is a job of the workers machinery
(:mod:`cqrs_ddd_advanced_core.workers`), and :class:`OutboxWorker` runs it
under a lease. Each step reads the next page of the event log after its
checkpoint (``read_all``: committed events in the store's global order, never
skipping one that commits later at a lower position), publishes each as a
:class:`~.envelope.MessageEnvelope`, waiting for the broker's confirmation,
then advances the checkpoint in a transaction fenced by the lease. So:

* nothing is marked published before the broker confirmed it;
* a relay that dies between a confirmation and its checkpoint publishes the
  page again when it (or another) resumes: the same message ids, which
  JetStream drops within its duplicate window and consumers' inboxes drop
  (coming);
* one relay at a time holds the lease (several processes may run
  ``OutboxWorker``; a standby takes over when the holder's lease runs out),
  so the events go out one at a time in log order, and so in order per
  aggregate.

:class:`OutboxTableRelay` does the same for the outbox table, where
state-stored aggregates' events are written (an aggregate's events are in the
log or in the outbox, never both, so each reaches the broker through one
relay). A publish that fails (the broker is down) fails the step: the worker
backs off (capped) and resumes from the checkpoint. Coming: per-partition
leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from cqrs_ddd_advanced_core.domain.exceptions import WorkHaltedError
from cqrs_ddd_advanced_core.outbox import OutboxStore
from cqrs_ddd_advanced_core.workers import Lease, WorkerLoop, WorkerStatus, read_status
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_infrastructure_messaging.envelope import MessageEnvelope

logger = logging.getLogger(__name__)

TopicOf = Callable[[MessageEnvelope], str]
"""Names the topic (routing key, subject, stream key) an envelope goes to."""


class EnvelopePublisher(Protocol):
    """What the relay publishes through: any of the package's publishers."""

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        """Publish ``envelope`` under ``topic``; return once the broker confirmed it."""
        ...


class _Relay:
    """What both relays share: their name, kind, settings, position and halt."""

    def __init__(
        self,
        name: str,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        batch_size: int,
        lease_ttl: float,
    ) -> None:
        self._name = name
        self.storage = storage
        self.publisher = publisher
        self.batch_size = batch_size
        self.lease_ttl = lease_ttl
        self.position = 0
        self.published = 0
        """How many messages this relay published (repeats after a takeover included)."""

    @property
    def name(self) -> str:
        """The relay's name: the key of its lease and checkpoint."""
        return self._name

    @property
    def kind(self) -> str:
        """Always ``"relay"``."""
        return "relay"

    def leased(self, lease: Lease) -> None:
        """Resume from the checkpoint the lease was taken at."""
        self.position = lease.position

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        """Log why the relay stopped."""
        logger.error("relay %r halted: %s", self.name, error)


class EventLogRelay(_Relay):
    """Publishes the event log from its checkpoint (see the module docs)."""

    def __init__(
        self,
        *,
        name: str,
        event_store: EventStore,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        topic: TopicOf,
        batch_size: int = 100,
        lease_ttl: float = 15.0,
    ) -> None:
        super().__init__(name, storage, publisher, batch_size, lease_ttl)
        self.event_store = event_store
        self.topic = topic

    async def step(self, lease: Lease) -> bool:
        """Publish the next page of the log, then advance the checkpoint; False when none."""
        page = await self.event_store.read_all(after_position=self.position, limit=self.batch_size)
        if not page:
            return False
        for stored in page:
            envelope = MessageEnvelope.of_stored(stored)
            await self.publisher.publish_envelope(envelope, topic=self.topic(envelope))
            self.published += 1
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            transaction.advance(page[-1].position)
        self.position = page[-1].position
        return True


class OutboxTableRelay(_Relay):
    """Publishes the outbox table's unpublished messages (state-stored aggregates' events).

    Each step takes the oldest unpublished messages (``OutboxStore.pending``:
    by the order they were written, never "after the last id seen"),
    publishes each as an envelope to its row's topic (or ``topic(envelope)``)
    and waits for the broker's confirmation, then marks them published in the
    transaction fenced by the lease. One relay at a time holds the lease, so
    an aggregate's messages go out in the order they were written.
    """

    def __init__(
        self,
        *,
        name: str,
        outbox: OutboxStore,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        topic: TopicOf | None = None,
        batch_size: int = 100,
        lease_ttl: float = 15.0,
    ) -> None:
        super().__init__(name, storage, publisher, batch_size, lease_ttl)
        self.outbox = outbox
        self.topic = topic

    async def step(self, lease: Lease) -> bool:
        """Publish the oldest unpublished messages, then mark them; False when there were none."""
        messages = await self.outbox.pending(limit=self.batch_size)
        if not messages:
            return False
        for message in messages:
            envelope = MessageEnvelope.of_document(message.document)
            topic = message.topic if self.topic is None else self.topic(envelope)
            await self.publisher.publish_envelope(envelope, topic=topic)
            self.published += 1
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            await self.outbox.mark_published(transaction, [message.id for message in messages])
            newest = max(message.id for message in messages)
            if newest > self.position:
                transaction.advance(newest)
                self.position = newest
        return True


class OutboxWorker:
    """Runs a relay (:class:`EventLogRelay` or :class:`OutboxTableRelay`) under its lease.

    In the background (:meth:`start`, :meth:`stop`) or on demand (:meth:`drain`).

    ``owner`` names this process in the lease (any unique string);
    ``poll_interval`` is how often an idle relay looks for new events (the
    event store's wake-up shortens the wait in this process).
    """

    def __init__(
        self,
        relay: EventLogRelay | OutboxTableRelay,
        *,
        owner: str,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.5,
        max_backoff: float = 30.0,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.relay = relay
        self.loop = WorkerLoop(
            relay,
            relay.storage.leases,
            owner=owner,
            nudge=wakeup or Wakeup(),
            lease_ttl=relay.lease_ttl,
            poll_interval=poll_interval,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            logger=logger,
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start relaying in the background; starting a running worker does nothing."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self.loop.run(self._stopping), name="outbox-relay")

    async def stop(self) -> None:
        """Stop after the page under way, and give the lease back."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.loop.give_up_lease()

    async def status(self) -> WorkerStatus:
        """Return the relay's status on the workers' shape (owner, epoch, checkpoint, lag).

        For an :class:`EventLogRelay` the head and lag are the event log's. For
        an :class:`OutboxTableRelay` the checkpoint is the newest message id
        marked published, and the lag the messages still unpublished (counted
        up to 10,000), the oldest's age its lag in seconds.
        """
        relay = self.relay
        if isinstance(relay, EventLogRelay):
            return await read_status(
                relay.storage, relay.event_store, relay.name, kind="relay", state=self.loop.state
            )
        record = await relay.storage.checkpoints.record(relay.name)
        pending = await relay.outbox.pending(limit=10_000)
        waited = 0.0
        if pending:
            waited = max((datetime.now(UTC) - pending[0].created_at).total_seconds(), 0.0)
        return WorkerStatus(
            name=relay.name,
            state="halted" if record.halted else self.loop.state,
            checkpoint=record.position,
            head_position=max([record.position, *(message.id for message in pending)]),
            lag_events=len(pending),
            lag_seconds=waited,
            owner=record.owner,
            epoch=record.epoch,
            dead_letters=await relay.storage.letters.count(relay.name),
            last_error=record.last_error,
            kind="relay",
            lease_expires_at=record.lease_expires_at,
        )

    async def drain(self) -> None:
        """Publish everything there is now, in the caller's task.

        Does nothing when another worker holds the relay's lease.
        """
        await self.loop.drain()
