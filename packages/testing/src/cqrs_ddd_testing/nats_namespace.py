"""A subject and stream-name prefix per test on a shared NATS server, and its cleanup.

Core NATS subjects hold no state; JetStream streams do, so
`delete_nats_namespace` deletes every stream whose name starts with the prefix,
including the streams behind key-value buckets (`KV_<name>`) and object stores
(`OBJ_<name>`) named with it. Consumers go with their stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats
import nats.js.errors

from cqrs_ddd_testing.naming import unique_name

__all__ = ["NatsNamespace", "delete_nats_namespace", "new_nats_namespace"]

_FORBIDDEN_IN_STREAM_NAMES = frozenset(".*>/\\ \t\r\n")
_MAX_PAGES = 1_000


@dataclass(frozen=True, slots=True)
class NatsNamespace:
    """The server URL and a prefix that belongs to one test alone.

    The prefix is valid both as a subject token and inside a JetStream stream name
    (which may not contain `.`, `*`, `>` or whitespace).
    """

    url: str
    prefix: str

    def subject(self, suffix: str) -> str:
        """Return the subject `<prefix>.<suffix>`; `suffix` may hold more tokens or wildcards."""
        return f"{self.prefix}.{suffix}"

    def stream(self, suffix: str) -> str:
        """Return the stream name `<prefix>_<suffix>`.

        Raises `ValueError` when `suffix` holds a character stream names forbid.
        """
        forbidden = sorted(_FORBIDDEN_IN_STREAM_NAMES.intersection(suffix))
        if forbidden:
            msg = f"stream name suffix {suffix!r} holds forbidden characters {forbidden!r}"
            raise ValueError(msg)
        return f"{self.prefix}_{suffix}"


def new_nats_namespace(url: str) -> NatsNamespace:
    """Return a namespace on `url` with a fresh unique prefix (nothing is sent)."""
    return NatsNamespace(url=url, prefix=unique_name())


async def delete_nats_namespace(
    namespace: NatsNamespace, *, connect_timeout: float = 10.0
) -> list[str]:
    """Delete the JetStream streams named with the namespace's prefix; return their names.

    A stream that disappears meanwhile is not an error. Connection errors propagate.
    """
    client = await nats.connect(
        namespace.url,
        connect_timeout=max(round(connect_timeout), 1),
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    try:
        jetstream = client.jetstream()
        names = [name for name in await _stream_names(jetstream) if _belongs(namespace, name)]
        for name in names:
            try:
                await jetstream.delete_stream(name)
            except nats.js.errors.NotFoundError:
                continue
    finally:
        await client.close()
    return names


async def _stream_names(jetstream: nats.js.JetStreamContext) -> list[str]:
    names: list[str] = []
    for _ in range(_MAX_PAGES):
        page = await jetstream.streams_info(offset=len(names))
        if not page:
            break
        names.extend(info.config.name for info in page if info.config.name)
    return names


def _belongs(namespace: NatsNamespace, stream_name: str) -> bool:
    return stream_name.startswith(
        (namespace.prefix, f"KV_{namespace.prefix}", f"OBJ_{namespace.prefix}")
    )
