"""``RedisStreamsPublisher``: appends to Redis streams with ``XADD`` (redis-py asyncio).

Each message is one stream entry (the stream's key is the topic) holding the
event id (``message_id``), the content type and the envelope (``body``);
``publish`` returns once Redis answered ``XADD`` with the entry's id. Redis
has no duplicate detection: a message published twice is two entries, and
consumers drop the second through their inbox (keyed by ``message_id``).
``maxlen`` (optional) trims each stream to about that many entries.

What Redis keeps is what its persistence keeps: without AOF (``appendonly
no``) a restart loses every entry written since the last RDB snapshot, and
with ``--save ""`` all of them; the relays mark a message sent on the
``XADD`` reply, so such a loss is not republished. Run Redis with AOF
(``appendfsync everysec`` or ``always``) when the stream must survive restarts.

The URL comes from ``REDIS_URL`` when none is given. A server that does not
answer at start raises :class:`~.errors.BrokerUnavailableError` within
``connect_timeout`` seconds; a command without a reply within
``command_timeout`` seconds raises :class:`~.errors.PublishNotConfirmedError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from cqrs_ddd_infrastructure_messaging.envelope import CONTENT_TYPE
from cqrs_ddd_infrastructure_messaging.errors import (
    BrokerUnavailableError,
    PublishNotConfirmedError,
    redacted,
)
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher

BROKER = "Redis"
DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisStreamsPublisher(BrokerPublisher):
    """Appends to Redis streams on the server at ``url`` (``REDIS_URL`` by default)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        maxlen: int | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.url = url or os.environ.get("REDIS_URL", DEFAULT_URL)
        self.maxlen = maxlen
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._client: Redis | None = None
        self.last_entry_id: str | None = None
        """The stream entry id of the latest message published."""

    async def start(self) -> None:
        """Connect and check that the server answers."""
        client: Redis = Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.command_timeout,
        )
        try:
            await client.ping()
        except (OSError, TimeoutError, RedisError) as error:
            await client.aclose()
            raise BrokerUnavailableError(
                BROKER, redacted(self.url), f"{type(error).__name__}: {error}"
            ) from None
        self._client = client

    async def close(self) -> None:
        """Close the connection."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _send(
        self, topic: str, body: bytes, message_id: str, headers: Mapping[str, str]
    ) -> None:
        if self._client is None:
            raise BrokerUnavailableError(BROKER, redacted(self.url), "not started: call start()")
        fields: dict[Any, Any] = {
            "message_id": message_id,
            "content_type": CONTENT_TYPE,
            "body": body,
        }
        try:
            entry = await self._client.xadd(
                topic, fields, maxlen=self.maxlen, approximate=self.maxlen is not None
            )
        except (OSError, TimeoutError, RedisError) as error:
            reason = f"{type(error).__name__}: {error}"
            raise PublishNotConfirmedError(
                BROKER, topic, message_id, reason, refused=_refused(error)
            ) from None
        self.last_entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)


_UNWELL = (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
"""Redis errors that say the server cannot take writes now, whatever the entry."""

_UNWELL_CODES = ("BUSY", "MISCONF", "NOREPLICAS", "LOADING", "OOM", "READONLY", "NOPERM")
"""The same, as codes of a plain ``ResponseError`` (redis-py strips the codes it maps)."""


def _refused(error: BaseException) -> bool:
    """Whether Redis refused this entry (a wrong key type...), not any write now.

    Out of memory, loading, a failover or a missing permission is the server's
    state, not the entry's fault.
    """
    if not isinstance(error, ResponseError) or isinstance(error, _UNWELL):
        return False
    return not str(error).startswith(_UNWELL_CODES)
