"""Events, projectors and writers for the projection worker tests of every package.

The projectors write through read-model stores that have the same interface in
memory and in SQL (``get``/``upsert``/``update``/``clear`` taking the batch's
connection, ``query``/``count``), so one projector class runs on every backend:

* :class:`OrderProjector` keeps an order summary per order stream (the spec's
  Projections example: customer, status, total, created_at).
* :class:`TallyProjector` keeps a row per stream: how many events it applied
  (``applied_count``), the last version it saw and the sum of the ``n`` values.
  An event applied twice or skipped shows as a count that differs from the
  stream's length.
* :class:`LedgerProjector` keeps a row per event (``n``) with ``times`` applied;
  it can be told to fail on chosen events, for ever or a number of times.

Both tally and ledger projectors also remember, in plain Python, every call
they got: position and the connection object (one per batch), so tests can
see the order and the batches.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from cqrs_ddd_advanced_core.projections import (
    ProjectionContext,
    Projector,
    QueryOptions,
    projects,
)
from cqrs_ddd_advanced_core.upcasting import EventUpcaster, UpcasterRegistry
from cqrs_ddd_core import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError
from cqrs_ddd_core.ports.event_store import EventStore

# ---------------------------------------------------------------- events


class OrderPlaced(DomainEvent):
    customer_id: str
    total: int


class OrderConfirmed(DomainEvent):
    pass


class OrderShipped(DomainEvent):
    pass


class Ticked(DomainEvent):
    """A counted event: ``n`` is unique across a test."""

    n: int


class Noise(DomainEvent):
    """An event no projector handles."""

    note: str = ""


class Mystery(DomainEvent):
    """Handled by name only; tests leave its class out of the registry on purpose."""

    clue: str = ""


class PriceSetV1(DomainEvent):
    """``PriceSet`` as release 1 stored it (euros as a float)."""

    event_type: ClassVar[str] = "PriceSet"

    amount_eur: float


class PriceSet(DomainEvent):
    """The current ``PriceSet`` (schema version 2: cents as an int)."""

    schema_version: ClassVar[int] = 2

    amount_cents: int


class PriceSetV1ToV2(EventUpcaster):
    event_type = "PriceSet"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        rest = {key: value for key, value in data.items() if key != "amount_eur"}
        return {**rest, "amount_cents": round(data["amount_eur"] * 100)}


def price_upcasters() -> UpcasterRegistry:
    return UpcasterRegistry([PriceSetV1ToV2()])


class OrderPlacedWithTextTotal(DomainEvent):
    """Stored as ``OrderPlaced`` but with a total the current class refuses."""

    event_type: ClassVar[str] = "OrderPlaced"

    customer_id: str
    total: str


# ---------------------------------------------------------------- read models


class ReadModel(Protocol):
    """What the projectors need of a read-model store (memory and SQL have it)."""

    async def get(self, connection: Any, key: Any) -> dict[str, Any] | None: ...

    async def upsert(self, connection: Any, row: Mapping[str, Any]) -> None: ...

    async def update(self, connection: Any, key: Any, changes: Mapping[str, Any]) -> bool: ...

    async def clear(self, connection: Any) -> None: ...

    async def query(self, options: QueryOptions) -> list[dict[str, Any]]: ...


# ---------------------------------------------------------------- projectors


class OrderProjector(Projector):
    """One summary row per order stream: the read model of the spec's example."""

    projection_name = "order_summaries"

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    @projects(OrderPlaced)
    async def placed(self, event: OrderPlaced, context: ProjectionContext) -> None:
        await self.read_model.upsert(
            context.connection,
            {
                "id": context.stream_id,
                "customer_id": event.customer_id,
                "status": "pending",
                "total": event.total,
                "created_at": event.occurred_at,
            },
        )

    @projects(OrderConfirmed)
    async def confirmed(self, event: OrderConfirmed, context: ProjectionContext) -> None:
        await self.read_model.update(context.connection, context.stream_id, {"status": "confirmed"})

    @projects(OrderShipped)
    async def shipped(self, event: OrderShipped, context: ProjectionContext) -> None:
        await self.read_model.update(context.connection, context.stream_id, {"status": "shipped"})

    async def query(self, options: QueryOptions) -> list[dict[str, Any]]:
        """Query the read model (``order_projection.query(options)`` of the spec)."""
        return await self.read_model.query(options)


@dataclass
class Calls:
    """What a projector's handler was called with, in call order (not transactional)."""

    positions: list[int] = field(default_factory=list)
    connections: list[Any] = field(default_factory=list)
    per_n: Counter[int] = field(default_factory=Counter)

    def record(self, n: int, context: ProjectionContext) -> None:
        self.positions.append(context.position)
        self.connections.append(context.connection)  # kept alive, so identities stay unique
        self.per_n[n] += 1

    def batch_sizes(self) -> list[int]:
        """Return how many calls each successive connection (batch) got."""
        sizes: list[int] = []
        previous: Any = None
        for connection in self.connections:
            if sizes and connection is previous:
                sizes[-1] += 1
            else:
                sizes.append(1)
            previous = connection
        return sizes


class HandlerFailedError(Exception):
    """What the instrumented projectors raise when told to fail."""


class _Instrumented(Projector):
    def __init__(self, read_model: ReadModel, name: str) -> None:
        self.read_model = read_model
        self._name = name
        self.calls = Calls()
        self.fail_on: set[int] = set()
        """Values of ``n`` whose events always fail."""
        self.transient: dict[int, int] = {}
        """Values of ``n`` whose events fail that many more times, then succeed."""
        self.delay = 0.0
        """Seconds each handler call stalls, reading its row every 0.2 s meanwhile."""

    @property
    def name(self) -> str:
        return self._name

    async def _check(self, event: Ticked, context: ProjectionContext, key: Any) -> None:
        self.calls.record(event.n, context)
        stalled = 0.0
        while stalled < self.delay:
            # a stalled handler, whose transaction is not idle (PostgreSQL would end it)
            await asyncio.sleep(0.2)
            stalled += 0.2
            await self.read_model.get(context.connection, key)
        if event.n in self.fail_on:
            raise HandlerFailedError(f"cannot apply n={event.n}")
        left = self.transient.get(event.n, 0)
        if left:
            self.transient[event.n] = left - 1
            raise HandlerFailedError(f"transient failure on n={event.n}")


class TallyProjector(_Instrumented):
    """A row per stream: ``applied_count``, ``last_version``, ``total`` (sum of n)."""

    @projects(Ticked)
    async def ticked(self, event: Ticked, context: ProjectionContext) -> None:
        await self._check(event, context, context.stream_id)
        row = await self.read_model.get(context.connection, context.stream_id)
        if row is None:
            await self.read_model.upsert(
                context.connection,
                {
                    "stream_id": context.stream_id,
                    "applied_count": 1,
                    "last_version": context.version,
                    "total": event.n,
                },
            )
            return
        await self.read_model.update(
            context.connection,
            context.stream_id,
            {
                "applied_count": row["applied_count"] + 1,
                "last_version": context.version,
                "total": row["total"] + event.n,
            },
        )


class LedgerProjector(_Instrumented):
    """A row per event ``n``: its stream, position and how many ``times`` it was applied."""

    handles: ClassVar[Mapping[type[DomainEvent] | str, str]] = {Ticked: "ticked"}

    async def ticked(self, event: Ticked, context: ProjectionContext) -> None:
        await self._check(event, context, event.n)
        row = await self.read_model.get(context.connection, event.n)
        times = 1 if row is None else row["times"] + 1
        await self.read_model.upsert(
            context.connection,
            {
                "n": event.n,
                "stream_id": context.stream_id,
                "position": context.position,
                "times": times,
            },
        )


class PriceProjector(Projector):
    """Remembers the prices it saw (no transaction: only for the upcasting test)."""

    projection_name = "prices"

    def __init__(self) -> None:
        self.seen: list[PriceSet] = []

    @projects(PriceSet)
    async def price_set(self, event: PriceSet, context: ProjectionContext) -> None:
        self.seen.append(event)

    async def reset(self, connection: Any) -> None:
        self.seen.clear()


# ---------------------------------------------------------------- writers


class Writer:
    """Appends ``Ticked`` events with a unique ``n``, tracking every stream's version."""

    def __init__(self, store: EventStore, *, first_n: int = 1) -> None:
        self.store = store
        self.versions: Counter[str] = Counter()
        self._next_n = first_n

    async def tick(self, stream_id: str, count: int = 1, **envelope: Any) -> list[int]:
        """Append ``count`` events to ``stream_id``; return their ``n``."""
        numbers = list(range(self._next_n, self._next_n + count))
        self._next_n += count
        await self.store.append(
            stream_id,
            [Ticked(n=n, **envelope) for n in numbers],
            expected_version=self.versions[stream_id],
        )
        self.versions[stream_id] += count
        return numbers

    async def other(self, stream_id: str, events: Sequence[DomainEvent]) -> None:
        """Append any events to ``stream_id``."""
        await self.store.append(stream_id, events, expected_version=self.versions[stream_id])
        self.versions[stream_id] += len(events)

    async def interleaved(self, streams: Sequence[str], rounds: int) -> list[int]:
        """Append one event to each stream in turn, ``rounds`` times; return the ``n``."""
        numbers: list[int] = []
        for _ in range(rounds):
            for stream_id in streams:
                numbers += await self.tick(stream_id)
        return numbers


async def race_appends(
    store: EventStore,
    versions: Counter[str],
    streams: Sequence[str],
    *,
    events: int,
    seed: int,
    first_n: int,
) -> Counter[str]:
    """Append ``events`` single events to random ``streams``, sharing ``versions`` with rivals.

    A conflict with another writer (same stream, same version) moves the shared
    version on and tries again, at most 50 times per event. Returns how many
    events this writer appended per stream.
    """
    rng = random.Random(seed)
    appended: Counter[str] = Counter()
    for index in range(events):
        stream_id = rng.choice(streams)
        for _ in range(50):
            expected = versions[stream_id]
            try:
                await store.append(
                    stream_id, [Ticked(n=first_n + index)], expected_version=expected
                )
            except ConcurrencyError as conflict:
                versions[stream_id] = max(versions[stream_id], conflict.actual_version or 0)
                continue
            versions[stream_id] = max(versions[stream_id], expected + 1)
            appended[stream_id] += 1
            break
        else:
            raise AssertionError(f"writer {seed} kept losing the race on {stream_id}")
    return appended


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


# ---------------------------------------------------------------- the spec's example

EXPECTED_ORDERS = [  # (id, status, total) of what the spec's query returns, newest first
    ("order-7", "pending", 101),
    ("order-5", "confirmed", 250),
    ("order-1", "pending", 150),
]


async def place_orders(store: EventStore) -> None:
    """Seven orders placed a minute apart, some confirmed or shipped later."""
    placed: list[tuple[str, str, int, list[type[DomainEvent]]]] = [
        ("order-1", "cust_123", 150, []),
        ("order-2", "cust_123", 300, [OrderShipped]),  # shipped
        ("order-3", "cust_123", 90, [OrderConfirmed]),  # too small
        ("order-4", "cust_999", 500, []),  # someone else's
        ("order-5", "cust_123", 250, [OrderConfirmed]),
        ("order-6", "cust_123", 120, [OrderConfirmed, OrderShipped]),  # shipped
        ("order-7", "cust_123", 101, []),
    ]
    for index, (order_id, customer_id, total, _) in enumerate(placed):
        at = minutes_ago(60 - index)
        await store.append(
            order_id,
            [OrderPlaced(customer_id=customer_id, total=total, occurred_at=at)],
            expected_version=0,
        )
    for order_id, _, _, later in placed:
        for version, event_class in enumerate(later, start=1):
            await store.append(order_id, [event_class()], expected_version=version)
