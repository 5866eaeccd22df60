"""What every broker publisher shares: ``async with``, the core port, the envelope shortcut."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from cqrs_ddd_infrastructure_messaging.envelope import MessageEnvelope


class BrokerPublisher(ABC):
    """The base of the broker publishers: subclasses write ``start``, ``close`` and ``_send``."""

    @abstractmethod
    async def start(self) -> None:
        """Connect to the broker."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection."""

    @abstractmethod
    async def _send(
        self, topic: str, body: bytes, message_id: str, headers: Mapping[str, str]
    ) -> None:
        """Send one message; return once the broker confirmed it."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        """Publish ``envelope`` under ``topic``; return once the broker confirmed it."""
        await self._send(topic, envelope.to_bytes(), str(envelope.message_id), envelope.headers())

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish a JSON ``payload`` (the core ``MessagePublisher`` port)."""
        body = json.dumps(dict(payload), separators=(",", ":")).encode()
        await self._send(topic, body, message_id, dict(headers or {}))
