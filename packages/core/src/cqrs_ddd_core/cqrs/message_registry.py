"""The message type registry: stable names mapped to command classes, and commands to JSON.

What stores a command to run later (the command scheduler, a saga's pending
commands) keeps its type *name* and its fields as portable JSON, and builds it
back through this registry. Only registered classes are ever built: a stored
name is never imported as a module path, so a stored command survives restarts
and deploys as long as its class stays registered under its name, and a name
that is no longer known is a typed error, never an import of whatever the
database says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pydantic

from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.exceptions import (
    FieldIssue,
    MessageDeserializationError,
    MessageSerializationError,
    MessageTypeConflictError,
    UnknownMessageTypeError,
)
from cqrs_ddd_core.serialization.codec import payload_issue, validation_issues
from cqrs_ddd_core.serialization.json_safety import portable_dump

TCommandClass = TypeVar("TCommandClass", bound=type[Command])


class MessageTypeRegistry:
    """Maps each command type name to its class, and commands to JSON documents and back.

    A class is registered under its ``__name__`` unless given another
    ``name``; keep the name when a class moves or is renamed, so stored
    commands still find it. ``register`` also works as a class decorator.
    :meth:`from_handlers` registers every command type a mediator's handler
    registry has a handler for.
    """

    def __init__(self, command_classes: Iterable[type[Command]] = ()) -> None:
        self._classes: dict[str, type[Command]] = {}
        self._names: dict[type[Command], str] = {}
        for command_class in command_classes:
            self.register(command_class)

    @classmethod
    def from_handlers(cls, handlers: HandlerRegistry) -> MessageTypeRegistry:
        """Return a registry of every command type ``handlers`` has a handler for."""
        return cls(sorted(handlers.command_types, key=lambda command: command.__name__))

    @classmethod
    def of_mediator(cls, sender: object) -> MessageTypeRegistry | None:
        """Return a registry of the commands ``sender`` has handlers for, or None.

        ``sender`` is a mediator (anything with a ``HandlerRegistry`` as
        ``registry``) or its bound ``send``; None when it is neither.
        """
        owner = getattr(sender, "__self__", sender)
        handlers = getattr(owner, "registry", None)
        return cls.from_handlers(handlers) if isinstance(handlers, HandlerRegistry) else None

    def register(self, command_class: TCommandClass, *, name: str | None = None) -> TCommandClass:
        """Register ``command_class`` under ``name`` (its class name by default) and return it.

        Registering the same class again under the same name is harmless; a
        different class under a taken name raises ``MessageTypeConflictError``.
        """
        message_type = name or command_class.__name__
        existing = self._classes.get(message_type)
        if existing is not None and existing is not command_class:
            raise MessageTypeConflictError(message_type, existing, command_class)
        self._classes[message_type] = command_class
        self._names.setdefault(command_class, message_type)
        return command_class

    def resolve(self, message_type: str, *, where: str | None = None) -> type[Command]:
        """Return the class registered under ``message_type``; ``UnknownMessageTypeError`` if none.

        ``where`` (which stored message carried the name) only enriches the error.
        """
        try:
            return self._classes[message_type]
        except KeyError:
            raise UnknownMessageTypeError(message_type, where=where) from None

    def name_of(self, command: Command | type[Command]) -> str:
        """Return the name ``command``'s class is registered under; ``UnknownMessageTypeError``."""
        command_class = command if isinstance(command, type) else type(command)
        try:
            return self._names[command_class]
        except KeyError:
            raise UnknownMessageTypeError(command_class.__qualname__) from None

    def is_registered(self, command: Command | type[Command]) -> bool:
        """Return whether ``command``'s class is registered."""
        command_class = command if isinstance(command, type) else type(command)
        return command_class in self._names

    def __iter__(self) -> Iterator[type[Command]]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def encode(self, command: Command) -> tuple[str, dict[str, Any]]:
        """Return ``command``'s registered name and its fields as a portable JSON document.

        Raises ``UnknownMessageTypeError`` for an unregistered class and
        ``MessageSerializationError`` naming each field JSON cannot carry
        exactly (non-finite floats, integers beyond 2**53, lone surrogates...).
        """
        message_type = self.name_of(command)
        document, issues = portable_dump(command)
        if issues:
            raise MessageSerializationError(
                message_type, [FieldIssue(path, reason) for path, reason in issues]
            )
        return message_type, document

    def decode(self, message_type: str, payload: object, *, where: str | None = None) -> Command:
        """Build the command a stored ``(message_type, payload)`` pair describes.

        Raises ``UnknownMessageTypeError`` for a name no class is registered
        under and ``MessageDeserializationError`` naming each bad field when
        the payload does not fit the class (or is not a JSON object). ``where``
        names the stored message in both.
        """
        command_class = self.resolve(message_type, where=where)
        if not isinstance(payload, Mapping):
            raise MessageDeserializationError(message_type, [payload_issue(payload)], where=where)
        try:
            return command_class.model_validate(dict(payload))
        except pydantic.ValidationError as error:
            raise MessageDeserializationError(
                message_type, validation_issues(error), where=where
            ) from None
