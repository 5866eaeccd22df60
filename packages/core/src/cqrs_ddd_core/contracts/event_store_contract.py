"""The contract every ``EventStore`` implementation passes.

Subclass :class:`EventStoreContract` in a test module and provide two fixtures:
``event_store`` (an empty store) and ``uow_factory`` (builds a unit of work
whose transaction the store joins when it is ambient). Every test then runs
against the adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import (
    ConcurrencyError,
    DuplicateEventIdError,
    EventSerializationError,
    ValidationError,
)
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork
from cqrs_ddd_core.serialization.registry import EventTypeRegistry


class ContractEventHappened(DomainEvent):
    """The event the contract suite appends: one field of each awkward kind."""

    label: str
    amount: Decimal = Decimal("0")
    reference: UUID | None = None
    due: datetime | None = None
    tags: list[str] = []


def happened(label: str, **fields: object) -> ContractEventHappened:
    """Return a contract event with ``label`` and optional extra fields."""
    return ContractEventHappened(label=label, **fields)  # type: ignore[arg-type]


def labels(events: list[DomainEvent]) -> list[str]:
    """Return the labels of contract events, in order."""
    return [event.label for event in events if isinstance(event, ContractEventHappened)]


class EventStoreContract:
    """Behaviour shared by every event store: appends, versions, idempotence, reads."""

    registry = EventTypeRegistry([ContractEventHappened])

    async def load(self, store: EventStore, stream_id: str) -> list[DomainEvent]:
        """Return the stream's events as domain events."""
        return [self.registry.from_stored(e) for e in await store.load_stream(stream_id)]

    async def test_appended_events_come_back_in_order_with_versions(
        self, event_store: EventStore
    ) -> None:
        stored = await event_store.append("s-1", [happened("a"), happened("b")], expected_version=0)
        await event_store.append("s-1", [happened("c")], expected_version=2)
        events = await self.load(event_store, "s-1")
        assert labels(events) == ["a", "b", "c"]
        assert [event.version for event in events] == [1, 2, 3]
        assert [event.version for event in stored] == [1, 2]
        assert stored[0].position < stored[1].position

    async def test_every_field_of_an_event_survives_the_store(
        self, event_store: EventStore
    ) -> None:
        original = happened(
            "full",
            amount=Decimal("12.50"),
            reference=uuid4(),
            due=datetime(2026, 5, 1, 12, 30, tzinfo=UTC) + timedelta(microseconds=7),
            tags=["x", "ünïcode ✓"],
            correlation_id="corr-1",
            causation_id="cause-1",
            aggregate_type="Order",
            metadata={"user": "u-1", "nested": {"n": [1, 2.5, None, True]}},
        )
        await event_store.append("s-1", [original], expected_version=0)
        (loaded,) = await self.load(event_store, "s-1")
        assert loaded == original.model_copy(update={"aggregate_id": "s-1", "version": 1})
        assert isinstance(loaded, ContractEventHappened)
        assert str(loaded.amount) == "12.50"

    async def test_a_stale_expected_version_raises_and_writes_nothing(
        self, event_store: EventStore
    ) -> None:
        await event_store.append("s-1", [happened("a")], expected_version=0)
        with pytest.raises(ConcurrencyError) as raised:
            await event_store.append("s-1", [happened("b"), happened("c")], expected_version=0)
        assert (raised.value.stream_id, raised.value.expected_version) == ("s-1", 0)
        assert raised.value.actual_version == 1
        with pytest.raises(ConcurrencyError):
            await event_store.append("s-1", [happened("d")], expected_version=5)
        assert labels(await self.load(event_store, "s-1")) == ["a"]

    async def test_re_appending_a_stored_batch_is_a_no_op_returning_the_original(
        self, event_store: EventStore
    ) -> None:
        batch = [happened("a"), happened("b")]
        first = await event_store.append("s-1", batch, expected_version=0)
        retry = await event_store.append("s-1", batch, expected_version=0)
        assert [event.position for event in retry] == [event.position for event in first]
        assert labels(await self.load(event_store, "s-1")) == ["a", "b"]

    async def test_a_batch_overlapping_a_stored_one_in_part_is_refused(
        self, event_store: EventStore
    ) -> None:
        stored = happened("a")
        await event_store.append("s-1", [stored], expected_version=0)
        with pytest.raises(DuplicateEventIdError) as raised:
            await event_store.append("s-1", [stored, happened("b")], expected_version=0)
        assert raised.value.event_ids == (stored.event_id,)
        assert labels(await self.load(event_store, "s-1")) == ["a"]

    async def test_the_same_event_id_may_appear_in_another_stream(
        self, event_store: EventStore
    ) -> None:
        event = happened("a")
        await event_store.append("s-1", [event], expected_version=0)
        await event_store.append("s-2", [event.model_copy()], expected_version=0)
        assert labels(await self.load(event_store, "s-2")) == ["a"]

    async def test_a_stream_can_be_loaded_from_a_version(self, event_store: EventStore) -> None:
        await event_store.append("s-1", [happened(x) for x in "abcde"], expected_version=0)
        tail = await event_store.load_stream("s-1", from_version=4)
        assert [event.version for event in tail] == [4, 5]
        assert await event_store.load_stream("unknown") == []

    async def test_all_events_are_read_in_position_order_in_batches(
        self, event_store: EventStore
    ) -> None:
        for index in range(5):
            await event_store.append(
                f"s-{index % 2}", [happened(str(index))], expected_version=index // 2
            )
        first = await event_store.read_all(after_position=0, limit=3)
        rest = await event_store.read_all(after_position=first[-1].position, limit=10)
        everything = first + rest
        assert labels([self.registry.from_stored(e) for e in everything]) == list("01234")
        assert [e.position for e in everything] == sorted(e.position for e in everything)
        assert await event_store.current_position() == everything[-1].position
        assert await event_store.read_all(after_position=everything[-1].position) == []

    async def test_an_empty_store_is_at_position_zero(self, event_store: EventStore) -> None:
        assert await event_store.current_position() == 0
        assert await event_store.read_all() == []
        assert await event_store.append("s-1", [], expected_version=0) == []

    @pytest.mark.parametrize(
        "stream_id", ["", "a b", "orders.*", "orders.>", "x'; DROP TABLE events;--", "x" * 256]
    )
    async def test_an_unsafe_stream_id_is_refused_naming_the_field(
        self, event_store: EventStore, stream_id: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            await event_store.append(stream_id, [happened("a")], expected_version=0)
        assert raised.value.fields == ("stream_id",)
        assert await event_store.current_position() == 0

    @pytest.mark.parametrize("label", ["nul\x00", "lone \ud800 surrogate"])
    async def test_a_string_jsonb_would_refuse_is_refused_by_every_store(
        self, event_store: EventStore, label: str
    ) -> None:
        with pytest.raises(EventSerializationError, match="label"):
            await event_store.append("s-1", [happened(label)], expected_version=0)
        assert await event_store.current_position() == 0

    async def test_a_non_finite_number_in_metadata_is_refused_by_every_store(
        self, event_store: EventStore
    ) -> None:
        with pytest.raises(EventSerializationError, match="metadata"):
            await event_store.append(
                "s-1", [happened("a", metadata={"x": float("nan")})], expected_version=0
            )
        assert await event_store.current_position() == 0

    async def test_an_append_in_a_unit_of_work_is_visible_only_after_commit(
        self, event_store: EventStore, uow_factory: Callable[[], UnitOfWork]
    ) -> None:
        async with uow_factory() as uow:
            with command_scope(uow):
                await event_store.append("s-1", [happened("a")], expected_version=0)
            assert await event_store.load_stream("s-1") == []
            assert await event_store.read_all() == []
            await uow.commit()
        assert labels(await self.load(event_store, "s-1")) == ["a"]

    async def test_a_unit_of_work_sees_its_own_appends_and_appends_after_them(
        self, event_store: EventStore, uow_factory: Callable[[], UnitOfWork]
    ) -> None:
        # as the orchestrator's persist_event/persist_events do, in one transaction
        await event_store.append("s-1", [happened("before")], expected_version=0)
        async with uow_factory() as uow:
            with command_scope(uow):
                first = [happened("a")]
                await event_store.append("s-1", first, expected_version=1)
                await event_store.append("s-1", [happened("b")], expected_version=2)
                inside = labels(await self.load(event_store, "s-1"))
                again = await event_store.append("s-1", first, expected_version=1)
                with pytest.raises(ConcurrencyError):
                    await event_store.append("s-1", [happened("stale")], expected_version=2)
            await uow.commit()
        assert inside == ["before", "a", "b"]
        assert [event.version for event in again] == [2]
        events = await self.load(event_store, "s-1")
        assert (labels(events), [event.version for event in events]) == (
            ["before", "a", "b"],
            [1, 2, 3],
        )

    async def test_a_rolled_back_append_leaves_nothing_and_readers_pass_its_gap(
        self, event_store: EventStore, uow_factory: Callable[[], UnitOfWork]
    ) -> None:
        async with uow_factory() as uow:
            with command_scope(uow):
                await event_store.append("s-1", [happened("lost")], expected_version=0)
            await uow.rollback()
        await event_store.append("s-2", [happened("kept")], expected_version=0)
        assert await event_store.load_stream("s-1") == []
        visible = [self.registry.from_stored(e) for e in await event_store.read_all()]
        assert labels(visible) == ["kept"]

    async def test_two_transactions_racing_on_one_stream_have_exactly_one_winner(
        self, event_store: EventStore, uow_factory: Callable[[], UnitOfWork]
    ) -> None:
        await event_store.append("s-1", [happened("base")], expected_version=0)

        async def append_in_a_transaction(label: str) -> str:
            try:
                async with uow_factory() as uow:
                    with command_scope(uow):
                        await event_store.append(
                            "s-1", [happened(label), happened(label)], expected_version=1
                        )
                    await asyncio.sleep(0.01)
                    await uow.commit()
            except ConcurrencyError:
                return "conflict"
            return "won"

        outcomes = await asyncio.gather(append_in_a_transaction("x"), append_in_a_transaction("y"))
        assert sorted(outcomes) == ["conflict", "won"]
        events = await self.load(event_store, "s-1")
        assert [event.version for event in events] == [1, 2, 3]
        assert len(set(labels(events)[1:])) == 1
