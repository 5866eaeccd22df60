"""(g) What a three-step upcast chain costs a decoded global read (ours only).

The same rows are read twice: 100,000 events stored at schema version 1 under
the event type ``PriceRecorded`` (appended with ``SQLAlchemyEventStore.append``,
1,000 per stream). "No chain" decodes them with a registry holding the version-1
class (nothing to upcast); "v1->v4 chain" decodes them with a registry holding
the version-4 class and an ``UpcasterRegistry`` of three dict-transforming
upcasters (v1->v2, v2->v3, v3->v4). Both read with ``read_all`` in pages and
``EventDecoder.decode``; both classes have three payload fields.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from benchmarks.ours import OurBank
from benchmarks.plan import Plan
from benchmarks.report import Report, Row
from benchmarks.timing import Sample, Stopwatch, compare
from cqrs_ddd_advanced_core.upcasting import EventDecoder, EventUpcaster, UpcasterRegistry
from cqrs_ddd_core import DomainEvent, EventTypeRegistry


class PriceRecordedV1(DomainEvent):
    """Version 1 as it was written: an amount in whole units."""

    event_type: ClassVar[str] = "PriceRecorded"
    schema_version: ClassVar[int] = 1
    amount: int
    note: str
    currency: str


class PriceRecorded(DomainEvent):
    """Version 4, the current class."""

    event_type: ClassVar[str] = "PriceRecorded"
    schema_version: ClassVar[int] = 4
    amount_cents: int
    memo: str
    currency: str


class NoteToMemo(EventUpcaster):
    """v1 -> v2: ``note`` is renamed ``memo``."""

    event_type = "PriceRecorded"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Rename the key."""
        out = {k: v for k, v in data.items() if k != "note"}
        out["memo"] = data["note"]
        return out


class AmountToCents(EventUpcaster):
    """v2 -> v3: ``amount`` becomes ``amount_cents``."""

    event_type = "PriceRecorded"
    source_version = 2

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Scale and rename."""
        out = {k: v for k, v in data.items() if k != "amount"}
        out["amount_cents"] = data["amount"] * 100
        return out


class UpperCurrency(EventUpcaster):
    """v3 -> v4: currencies are upper case."""

    event_type = "PriceRecorded"
    source_version = 3

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Normalise the currency."""
        return {**data, "currency": data["currency"].upper()}


async def _read(bank: OurBank, decoder: EventDecoder, start: int, count: int, page: int) -> Sample:
    read, position = 0, start
    with Stopwatch() as watch:
        while read < count:
            rows = await bank.event_store.read_all(
                after_position=position, limit=min(page, count - read)
            )
            if not rows:
                break
            for stored in rows:
                decoder.decode(stored)
            read += len(rows)
            position = rows[-1].position
    return Sample(read, watch.seconds)


async def upcast_rows(
    bank: OurBank, backend: str, plan: Plan, report: Report, progress: Callable[[str], None]
) -> None:
    """Store ``plan.upcast_events`` v1 events, then time both decoded reads."""
    count, batch = plan.upcast_events, plan.batch_size
    progress(f"{backend}: (g) storing {count:,} version-1 events")
    start = await bank.current_position()
    for number in range(-(-count // batch)):
        events = [
            PriceRecordedV1(amount=i, note="list price", currency="eur")
            for i in range(min(batch, count - number * batch))
        ]
        await bank.event_store.append(f"prices-{number}", events, expected_version=0)
    plain = EventDecoder(EventTypeRegistry([PriceRecordedV1]))
    chained = EventDecoder(
        EventTypeRegistry([PriceRecorded]),
        UpcasterRegistry([NoteToMemo(), AmountToCents(), UpperCurrency()]),
    )
    first = await bank.event_store.read_all(after_position=start, limit=1)
    if not isinstance(chained.decode(first[0]), PriceRecorded):
        raise RuntimeError("the upcast chain did not reach PriceRecorded v4")
    progress(f"{backend}: (g) decoded read of {count:,} events, with and without the chain")
    rates = await compare(
        {
            "plain": partial(_read, bank, plain, start, count, plan.page_size),
            "chained": partial(_read, bank, chained, start, count, plan.page_size),
        },
        repeats=plan.repeats,
    )
    for label, key in (("no upcast", "plain"), ("v1->v4 upcast chain", "chained")):
        report.add(
            Row(f"(g) read {count:,} events decoded, {label}", backend, "events/s", ours=rates[key])
        )
    report.upcast_summary.append((backend, count, rates["plain"], rates["chained"]))
