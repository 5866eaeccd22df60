"""What the messaging tests share: reading back every message a JetStream stream holds."""

from __future__ import annotations

import nats

from cqrs_ddd_infrastructure_messaging import MessageEnvelope


async def jetstream_messages(url: str, stream: str) -> list[MessageEnvelope]:
    """Every message of ``stream`` on the server at ``url``, as envelopes, in stream order."""
    client = await nats.connect(url)
    try:
        jetstream = client.jetstream()
        count = (await jetstream.stream_info(stream)).state.messages
        messages = [await jetstream.get_msg(stream, seq=seq) for seq in range(1, count + 1)]
        return [MessageEnvelope.from_bytes(message.data or b"") for message in messages]
    finally:
        await client.close()
