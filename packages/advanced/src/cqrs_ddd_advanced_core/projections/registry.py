"""``ProjectorRegistry``: which projector handles which event type."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cqrs_ddd_advanced_core.domain.exceptions import ProjectorRegistrationError
from cqrs_ddd_advanced_core.projections.projector import ProjectionHandler, Projector
from cqrs_ddd_core.serialization import EventTypeRegistry


@dataclass(frozen=True, slots=True)
class RegisteredProjector:
    """A projector with its handlers by ``event_type`` name."""

    projector: Projector
    handlers: dict[str, ProjectionHandler]

    @property
    def name(self) -> str:
        """The projection's name."""
        return self.projector.name


class ProjectorRegistry:
    """Routes events to projectors by their ``event_type``.

    Event classes named by projectors are registered in :attr:`event_registry`
    (the one given, or a new one), which the worker decodes events with;
    handlers declared by name need their class registered there by you. A
    projector's name must be unique: it keys the checkpoint.
    """

    def __init__(
        self,
        projectors: Iterable[Projector] = (),
        *,
        event_registry: EventTypeRegistry | None = None,
    ) -> None:
        self.event_registry = event_registry if event_registry is not None else EventTypeRegistry()
        self._projectors: dict[str, RegisteredProjector] = {}
        for projector in projectors:
            self.register(projector)

    def register(self, projector: Projector) -> Projector:
        """Add ``projector``; raise ``ProjectorRegistrationError`` for a taken name."""
        if projector.name in self._projectors:
            raise ProjectorRegistrationError(projector.name, "a projector of that name exists")
        handlers: dict[str, ProjectionHandler] = {}
        for key, handler in projector.handlers().items():
            if isinstance(key, str):
                handlers[key] = handler
                continue
            if not self.event_registry.is_registered(key.event_type):
                self.event_registry.register(key)
            handlers[key.event_type] = handler
        self._projectors[projector.name] = RegisteredProjector(projector, handlers)
        return projector

    def get(self, name: str) -> RegisteredProjector:
        """Return the projector registered as ``name``; raise ``KeyError`` otherwise."""
        try:
            return self._projectors[name]
        except KeyError:
            raise KeyError(f"no projector named {name!r}") from None

    def handlers_for(self, event_type: str) -> list[tuple[str, ProjectionHandler]]:
        """Return ``(projection name, handler)`` for every projector handling ``event_type``."""
        return [
            (entry.name, entry.handlers[event_type])
            for entry in self._projectors.values()
            if event_type in entry.handlers
        ]

    @property
    def names(self) -> list[str]:
        """The names of the registered projections, in registration order."""
        return list(self._projectors)

    def __iter__(self) -> Iterator[RegisteredProjector]:
        return iter(self._projectors.values())

    def __len__(self) -> int:
        return len(self._projectors)
