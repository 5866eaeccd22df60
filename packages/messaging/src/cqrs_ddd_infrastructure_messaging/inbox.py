"""``InboxConsumer``: one message handled once, whatever the broker redelivers.

A broker subscriber (:mod:`~.subscribers`) hands each message's body to
:meth:`InboxConsumer.receive`, and acknowledges it only after ``receive``
returned, that is after the handler's transaction committed:

1. the body is read as an envelope and the event decoded through the event
   type registry, old schema versions upcast on the way; a body that is not
   an envelope, an unknown event type, or a payload the event class refuses is
   a *poison* message: :class:`PoisonMessageError` names why, and the
   subscriber dead-letters it and goes on;
2. in one unit of work, the consumer claims the message's id in the inbox
   (:class:`~cqrs_ddd_advanced_core.outbox.Inbox`), then runs the handlers of
   the event's type; the claim commits with their effect. A message claimed
   already is a redelivery: ``receive`` answers ``"duplicate"`` and the
   subscriber acknowledges it, with no second effect. A handler that raises
   rolls the claim back with its effect, and the subscriber leaves the
   message to the broker's redelivery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from cqrs_ddd_advanced_core.outbox import Inbox
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import CqrsDddError, EventTypeError, ValidationError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork
from cqrs_ddd_infrastructure_messaging.envelope import EnvelopeError, MessageEnvelope

Handler = Callable[[Any], Awaitable[None]]
"""Handles one event inside the consumer's unit of work."""

Received = Literal["handled", "duplicate", "ignored"]
"""What became of a message: handled now, handled before, or of a type nobody handles."""


class PoisonMessageError(CqrsDddError):
    """A message that no retry can handle; ``reason`` says why (for the dead-letter route)."""

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        self.reason = reason
        self.message_id = message_id
        where = f"message {message_id}" if message_id else "a message"
        super().__init__(f"{where} cannot be handled: {reason}")


class InboxConsumer:
    """Handles messages for consumer ``name`` (see the module docs)."""

    def __init__(
        self,
        name: str,
        *,
        decoder: EventDecoder,
        inbox: Inbox,
        uow_factory: Callable[[], UnitOfWork],
    ) -> None:
        self.name = name
        self.decoder = decoder
        self.inbox = inbox
        self.uow_factory = uow_factory
        self._handlers: dict[type[DomainEvent], list[Handler]] = {}

    def subscribe(self, event_type: type[DomainEvent], handler: Handler) -> None:
        """Run ``handler`` for events of ``event_type`` (and its subclasses)."""
        self._handlers.setdefault(event_type, []).append(handler)

    def decode(self, body: bytes) -> tuple[MessageEnvelope, DomainEvent]:
        """Return the envelope and event of ``body``; ``PoisonMessageError`` if it cannot be."""
        try:
            envelope = MessageEnvelope.from_bytes(body)
        except EnvelopeError as error:
            raise PoisonMessageError(str(error)) from None
        try:
            event = self.decoder.decode(_stored(envelope))
        except (EventTypeError, ValidationError, CqrsDddError) as error:
            reason = f"{type(error).__name__}: {error}"
            raise PoisonMessageError(reason, str(envelope.message_id)) from None
        if envelope.version is None:  # an event no aggregate versioned (stored with a stand-in)
            event = event.model_copy(update={"version": None})
        return envelope, event

    async def receive(self, body: bytes) -> Received:
        """Handle ``body`` once (see the module docs); raise what a handler raised."""
        envelope, event = self.decode(body)
        handlers = [
            handler
            for event_type, registered in self._handlers.items()
            if isinstance(event, event_type)
            for handler in registered
        ]
        if not handlers:
            return "ignored"
        uow = self.uow_factory()
        async with uow:
            with command_scope(
                uow,
                correlation_id=envelope.correlation_id,
                causation_id=str(envelope.message_id),
            ):
                if not await self.inbox.claim(self.name, envelope.message_id):
                    return "duplicate"
                for handler in handlers:
                    await handler(event)
            await uow.commit()
        return "handled"


def _stored(envelope: MessageEnvelope) -> StoredEvent:
    return StoredEvent(
        position=envelope.position or 0,
        stream_id=envelope.aggregate_id or "",
        version=envelope.version or 1,
        event_type=envelope.event_type,
        schema_version=envelope.schema_version,
        event_id=envelope.message_id,
        occurred_at=envelope.occurred_at,
        payload=envelope.payload,
        aggregate_type=envelope.aggregate_type,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        metadata=envelope.metadata,
    )
