"""MessageTypeRegistry: commands stored by name and rebuilt only from registered classes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cqrs_ddd_core import Command, HandlerRegistry, MessageTypeRegistry
from cqrs_ddd_core.exceptions import (
    MessageDeserializationError,
    MessageSerializationError,
    MessageTypeConflictError,
    UnknownMessageTypeError,
)
from cqrs_ddd_core.serialization.codec import UnreadableJSON


class SendReminder(Command):
    order_id: str
    amount: Decimal = Decimal("0")


class Other(Command):
    pass


def test_a_command_round_trips_through_its_name_and_json() -> None:
    registry = MessageTypeRegistry([SendReminder])
    command = SendReminder(order_id="o-1", amount=Decimal("12.50"), correlation_id="c")

    name, document = registry.encode(command)

    assert name == "SendReminder"
    assert document["order_id"] == "o-1"
    assert registry.decode(name, document) == command


def test_a_class_keeps_a_stable_name_when_given_one() -> None:
    registry = MessageTypeRegistry()
    registry.register(SendReminder, name="billing.SendReminder")
    assert registry.name_of(SendReminder) == "billing.SendReminder"
    assert registry.resolve("billing.SendReminder") is SendReminder
    with pytest.raises(MessageTypeConflictError, match=r"billing\.SendReminder"):
        registry.register(Other, name="billing.SendReminder")


def test_unknown_names_and_classes_are_typed_errors_naming_them() -> None:
    registry = MessageTypeRegistry([SendReminder])
    with pytest.raises(UnknownMessageTypeError, match=r"'os\.system'.*schedule 7") as raised:
        registry.decode("os.system", {}, where="schedule 7")
    assert raised.value.message_type == "os.system"
    with pytest.raises(UnknownMessageTypeError, match="Other"):
        registry.encode(Other())


def test_a_payload_that_no_longer_fits_names_each_field() -> None:
    registry = MessageTypeRegistry([SendReminder])
    with pytest.raises(MessageDeserializationError) as raised:
        registry.decode("SendReminder", {"amount": "lots", "extra": 1}, where="schedule 9")
    fields = {issue.field for issue in raised.value.issues}
    assert fields == {"order_id", "amount", "extra"}
    assert "schedule 9" in str(raised.value)
    with pytest.raises(MessageDeserializationError, match="payload: is not valid JSON"):
        registry.decode("SendReminder", UnreadableJSON("{", "truncated"))


def test_values_json_cannot_carry_are_refused_when_encoding() -> None:
    class Measured(Command):
        value: float

    registry = MessageTypeRegistry([Measured])
    with pytest.raises(MessageSerializationError, match="value"):
        registry.encode(Measured(value=float("nan")))


def test_from_handlers_registers_every_handled_command_type() -> None:
    handlers = HandlerRegistry()

    @handlers.command_handler(SendReminder)
    async def remind(command: SendReminder) -> None:
        return None

    registry = MessageTypeRegistry.from_handlers(handlers)
    assert list(registry) == [SendReminder]
    assert (registry.is_registered(SendReminder), registry.is_registered(Other)) == (True, False)
