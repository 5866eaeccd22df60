"""``NatsJetStreamPublisher``: publishes to a NATS JetStream stream, acknowledged (nats-py).

Each message is published with ``Nats-Msg-Id`` set to the event id, and
``publish`` returns once JetStream acknowledged it (its ``PubAck``): the
server drops a second message with the same id within the stream's duplicate
window (``duplicate_window`` seconds, 2 minutes by default), and the ack says
so (:attr:`NatsJetStreamPublisher.duplicates` counts them). The stream
(``stream``, capturing ``subjects``) is created at start when it does not
exist. The envelope's headers go with each message.

The URL comes from ``NATS_URL`` when none is given. A server that does not
answer at start raises :class:`~.errors.BrokerUnavailableError` within
``connect_timeout`` seconds; a publish that is not acknowledged raises
:class:`~.errors.PublishNotConfirmedError`. A connection lost later is made
again (every half second, for as long as it takes); publishes fail as not
confirmed meanwhile, and the relay retries them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

import nats
from nats.aio.client import Client
from nats.errors import BadHeaderError, BadSubjectError, MaxPayloadError
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from cqrs_ddd_infrastructure_messaging.envelope import CONTENT_TYPE
from cqrs_ddd_infrastructure_messaging.errors import (
    BrokerUnavailableError,
    PublishNotConfirmedError,
    redacted,
)
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher

BROKER = "NATS JetStream"
DEFAULT_URL = "nats://127.0.0.1:4222"


class NatsJetStreamPublisher(BrokerPublisher):
    """Publishes to JetStream stream ``stream`` on the server at ``url`` (``NATS_URL``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        stream: str,
        subjects: Sequence[str],
        duplicate_window: float = 120.0,
        connect_timeout: float = 5.0,
        ack_timeout: float = 10.0,
    ) -> None:
        self.url = url or os.environ.get("NATS_URL", DEFAULT_URL)
        self.stream = stream
        self.subjects = list(subjects)
        self.duplicate_window = duplicate_window
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.duplicates = 0
        """How many publishes the server reported as duplicates (same ``Nats-Msg-Id``)."""
        self._client: Client | None = None
        self._jetstream: JetStreamContext | None = None

    async def start(self) -> None:
        """Connect, and create the stream when it does not exist."""
        errors: list[Exception] = []

        async def remember(error: Exception) -> None:
            errors.append(error)

        try:
            async with asyncio.timeout(self.connect_timeout * 2):
                self._client = await nats.connect(
                    self.url,
                    connect_timeout=self.connect_timeout,
                    allow_reconnect=True,  # a dropped connection is made again, forever
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=remember,
                )
        except (OSError, TimeoutError, NatsError) as error:
            cause = errors[-1] if errors else error
            raise BrokerUnavailableError(
                BROKER, redacted(self.url), f"{type(cause).__name__}: {cause}"
            ) from None
        self._jetstream = self._client.jetstream(timeout=self.ack_timeout)
        try:
            await self._jetstream.stream_info(self.stream)
        except NotFoundError:
            await self._jetstream.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=self.subjects,
                    duplicate_window=self.duplicate_window,
                )
            )

    async def close(self) -> None:
        """Drain and close the connection."""
        client, self._client = self._client, None
        self._jetstream = None
        if client is not None:
            await client.close()

    async def _send(
        self, topic: str, body: bytes, message_id: str, headers: Mapping[str, str]
    ) -> None:
        if self._jetstream is None:
            raise BrokerUnavailableError(BROKER, redacted(self.url), "not started: call start()")
        sent = {**headers, "Nats-Msg-Id": message_id, "content-type": CONTENT_TYPE}
        try:
            ack = await self._jetstream.publish(topic, body, headers=sent)
        except (TimeoutError, NatsError) as error:
            reason = f"{type(error).__name__}: {error}"
            raise PublishNotConfirmedError(
                BROKER, topic, message_id, reason, refused=_refused(error)
            ) from None
        if ack.duplicate:
            self.duplicates += 1


def _refused(error: BaseException) -> bool:
    """Whether JetStream refused this message (rather than not answering)."""
    if isinstance(error, MaxPayloadError | BadSubjectError | BadHeaderError):
        return True  # the client refuses it before sending: it will never go
    return isinstance(error, APIError) and not isinstance(error, ServiceUnavailableError)
