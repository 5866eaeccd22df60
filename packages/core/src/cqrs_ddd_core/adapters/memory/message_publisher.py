"""An in-memory message publisher that keeps what it was given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """One message as :class:`InMemoryMessagePublisher` received it."""

    topic: str
    payload: Mapping[str, Any]
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


class InMemoryMessagePublisher:
    """Records published messages in order; a re-published ``message_id`` is kept once.

    Dropping duplicates by id is what the real broker adapters promise
    consumers too, so tests written against this one hold for them.
    """

    def __init__(self) -> None:
        self.messages: list[PublishedMessage] = []
        self._seen: set[str] = set()

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Record the message unless one with the same id was already published."""
        if message_id in self._seen:
            return
        self._seen.add(message_id)
        self.messages.append(
            PublishedMessage(topic, dict(payload), message_id, dict(headers or {}))
        )

    def on_topic(self, topic: str) -> list[PublishedMessage]:
        """Return the messages published under ``topic``, in order."""
        return [message for message in self.messages if message.topic == topic]
