"""The typed errors of the broker adapters: each names the broker and what failed."""

from __future__ import annotations

from cqrs_ddd_core.exceptions import CqrsDddError


class BrokerError(CqrsDddError):
    """A broker could not do what was asked."""


class BrokerUnavailableError(BrokerError):
    """The broker at ``url`` did not answer (at start, or when publishing)."""

    def __init__(self, broker: str, url: str, reason: str) -> None:
        self.broker = broker
        self.url = url
        self.reason = reason
        super().__init__(f"{broker} at {url} is unavailable: {reason}")


class PublishNotConfirmedError(BrokerError):
    """The broker did not confirm a message: it refused it, could not route it, or timed out.

    ``refused`` is True when the broker answered and refused this message
    (unroutable, nacked, too large): the message is to blame, and a relay
    counts the attempt against it. False when no answer came (a timeout, a
    lost connection): the broker is away, and the relay only backs off.
    """

    def __init__(
        self, broker: str, topic: str, message_id: str, reason: str, *, refused: bool = True
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.message_id = message_id
        self.reason = reason
        self.refused = refused
        super().__init__(f"{broker} did not confirm message {message_id} to {topic!r}: {reason}")


def redacted(url: str) -> str:
    """Return ``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"
