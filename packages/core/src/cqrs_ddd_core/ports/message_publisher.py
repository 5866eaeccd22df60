"""The message publisher port: hands messages to a broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class MessagePublisher(Protocol):
    """Publishes one message to a broker and returns once the broker confirmed it.

    ``message_id`` is the idempotency key: a broker adapter passes it on so that
    consumers (or the broker itself) can drop a re-published duplicate.
    """

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish ``payload`` under ``topic``; raise if the broker did not confirm it."""
        ...
