"""Projectors and their registry: declaring handlers, routing events, registering classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import pytest
from projection_test_model import (
    Mystery,
    Noise,
    OrderConfirmed,
    OrderPlaced,
    OrderShipped,
    Ticked,
)

from cqrs_ddd_advanced_core.projections import (
    ProjectionContext,
    ProjectionError,
    Projector,
    ProjectorRegistrationError,
    ProjectorRegistry,
    projects,
)
from cqrs_ddd_core import DomainEvent, EventTypeRegistry
from cqrs_ddd_core.ports.event_store import StoredEvent


def context_for(event_type: str, position: int = 7) -> ProjectionContext:
    stored = StoredEvent(
        position=position,
        stream_id="stream-1",
        version=3,
        event_type=event_type,
        schema_version=1,
        event_id=uuid4(),
        occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
        payload={},
        aggregate_type=None,
        correlation_id=None,
        causation_id=None,
        metadata={},
    )
    return ProjectionContext("test", None, stored)


class Decorated(Projector):
    """Handlers by decorator: one by class, one by name, one method for two types."""

    projection_name = "decorated"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    @projects(OrderPlaced)
    async def placed(self, event: Any, context: ProjectionContext) -> None:
        self.seen.append(("placed", type(event).__name__, context.position))

    @projects("Mystery")
    async def mystery(self, event: Any, context: ProjectionContext) -> None:
        self.seen.append(("mystery", type(event).__name__, context.position))

    @projects(OrderConfirmed, "OrderShipped")
    async def moved(self, event: Any, context: ProjectionContext) -> None:
        self.seen.append(("moved", type(event).__name__, context.position))


class Mapped(Projector):
    """Handlers by ``handles`` mapping: one by class, one by name."""

    projection_name = "mapped"
    handles: ClassVar[dict[type[DomainEvent] | str, str]] = {
        OrderPlaced: "on_placed",
        "Ticked": "on_ticked",
    }

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def on_placed(self, event: Any, context: ProjectionContext) -> None:
        self.seen.append(("placed", context.position))

    async def on_ticked(self, event: Any, context: ProjectionContext) -> None:
        self.seen.append(("ticked", context.position))


# ---------------------------------------------------------------- declaring handlers


async def test_decorated_handlers_are_found_by_class_and_by_name_and_bound_to_the_projector() -> (
    None
):
    # given
    projector = Decorated()
    registry = ProjectorRegistry([projector])
    entry = registry.get("decorated")
    # then: every declared type, by its event_type name
    assert set(entry.handlers) == {"OrderPlaced", "Mystery", "OrderConfirmed", "OrderShipped"}
    # and: the handlers are the projector's own methods
    placed = OrderPlaced(customer_id="c", total=1)
    await entry.handlers["OrderPlaced"](placed, context_for("OrderPlaced", 1))
    await entry.handlers["Mystery"](Mystery(), context_for("Mystery", 2))
    await entry.handlers["OrderShipped"](OrderShipped(), context_for("OrderShipped", 3))
    await entry.handlers["OrderConfirmed"](OrderConfirmed(), context_for("OrderConfirmed", 4))
    assert projector.seen == [
        ("placed", "OrderPlaced", 1),
        ("mystery", "Mystery", 2),
        ("moved", "OrderShipped", 3),
        ("moved", "OrderConfirmed", 4),
    ]


async def test_a_handles_mapping_declares_handlers_by_class_and_by_name() -> None:
    projector = Mapped()
    entry = ProjectorRegistry([projector]).get("mapped")
    assert set(entry.handlers) == {"OrderPlaced", "Ticked"}
    await entry.handlers["Ticked"](Ticked(n=1), context_for("Ticked", 5))
    await entry.handlers["OrderPlaced"](
        OrderPlaced(customer_id="c", total=1), context_for("OrderPlaced", 6)
    )
    assert projector.seen == [("ticked", 5), ("placed", 6)]


def test_the_projection_name_defaults_to_the_class_name() -> None:
    class Unnamed(Projector):
        @projects(Noise)
        async def noise(self, event: Any, context: ProjectionContext) -> None:
            pass

    assert ProjectorRegistry([Unnamed()]).names == ["Unnamed"]


# ---------------------------------------------------------------- declaration errors


def test_two_projectors_of_the_same_name_are_refused() -> None:
    registry = ProjectorRegistry([Decorated()])
    with pytest.raises(ProjectorRegistrationError, match="decorated"):
        registry.register(Decorated())
    with pytest.raises(ProjectorRegistrationError, match="decorated"):
        ProjectorRegistry([Decorated(), Decorated()])
    assert registry.names == ["decorated"]


def test_a_handler_declared_twice_for_one_event_type_is_refused() -> None:
    class ByClassAndByName(Projector):
        @projects(OrderPlaced)
        async def one(self, event: Any, context: ProjectionContext) -> None:
            pass

        @projects("OrderPlaced")
        async def two(self, event: Any, context: ProjectionContext) -> None:
            pass

    class DecoratorAndMapping(Projector):
        handles: ClassVar[dict[type[DomainEvent] | str, str]] = {OrderPlaced: "two"}

        @projects(OrderPlaced)
        async def one(self, event: Any, context: ProjectionContext) -> None:
            pass

        async def two(self, event: Any, context: ProjectionContext) -> None:
            pass

    for projector in (ByClassAndByName(), DecoratorAndMapping()):
        with pytest.raises(ProjectorRegistrationError, match="'OrderPlaced' twice"):
            ProjectorRegistry([projector])


def test_a_mapping_to_something_that_is_not_a_method_is_refused() -> None:
    class ToAMissingMethod(Projector):
        handles: ClassVar[dict[type[DomainEvent] | str, str]] = {OrderPlaced: "on_placed"}

    class ToAnAttribute(Projector):
        handles: ClassVar[dict[type[DomainEvent] | str, str]] = {OrderPlaced: "label"}
        label = "not callable"

    for projector in (ToAMissingMethod(), ToAnAttribute()):
        with pytest.raises(ProjectorRegistrationError, match="not a method"):
            ProjectorRegistry([projector])


def test_a_projector_without_handlers_is_refused() -> None:
    class Empty(Projector):
        async def helper(self, event: Any, context: ProjectionContext) -> None:
            pass

    with pytest.raises(ProjectorRegistrationError, match="declares no event handlers"):
        ProjectorRegistry([Empty()])


def test_event_keys_must_be_domain_event_classes_or_names() -> None:
    class NotAnEvent:
        pass

    class Wrong(Projector):
        handles: ClassVar[dict[Any, str]] = {NotAnEvent: "handler"}

        async def handler(self, event: Any, context: ProjectionContext) -> None:
            pass

    with pytest.raises(ProjectorRegistrationError, match="neither a DomainEvent class"):
        ProjectorRegistry([Wrong()])
    with pytest.raises(ProjectorRegistrationError):
        projects()
    # and: every registration error is a ProjectionError
    assert issubclass(ProjectorRegistrationError, ProjectionError)


# ---------------------------------------------------------------- routing


def test_events_go_only_to_the_projectors_that_handle_their_type() -> None:
    decorated, mapped = Decorated(), Mapped()
    registry = ProjectorRegistry([decorated, mapped])
    routes = {
        event_type: [name for name, _ in registry.handlers_for(event_type)]
        for event_type in ("OrderPlaced", "OrderShipped", "Ticked", "Mystery", "Noise")
    }
    assert routes == {
        "OrderPlaced": ["decorated", "mapped"],
        "OrderShipped": ["decorated"],
        "Ticked": ["mapped"],
        "Mystery": ["decorated"],
        "Noise": [],
    }
    # and: each route is the projector's own handler
    [(_, handler)] = registry.handlers_for("Ticked")
    assert handler == mapped.on_ticked
    assert registry.names == ["decorated", "mapped"]
    assert len(registry) == 2
    assert [entry.projector for entry in registry] == [decorated, mapped]
    with pytest.raises(KeyError, match="nobody"):
        registry.get("nobody")


def test_event_classes_named_by_projectors_are_registered_in_the_event_registry() -> None:
    # given: the application's registry, already holding one class
    event_registry = EventTypeRegistry([Noise])
    # when
    registry = ProjectorRegistry([Decorated(), Mapped()], event_registry=event_registry)
    # then: the registry's own, with the classes named by class (not those named by name)
    assert registry.event_registry is event_registry
    assert set(event_registry) == {Noise, OrderPlaced, OrderConfirmed}
    assert not event_registry.is_registered("OrderShipped")
    assert not event_registry.is_registered("Mystery")
    assert not event_registry.is_registered("Ticked")
    # and: without one, the registry makes its own
    assert set(ProjectorRegistry([Mapped()]).event_registry) == {OrderPlaced}
