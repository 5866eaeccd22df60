from __future__ import annotations

import nats
import nats.js.errors
import pytest

from cqrs_ddd_testing import NatsNamespace, delete_nats_namespace, new_nats_namespace


async def test_a_stream_named_in_the_namespace_stores_and_delivers_one_message(
    nats_namespace: NatsNamespace,
) -> None:
    # given
    client = await nats.connect(nats_namespace.url)
    try:
        jetstream = client.jetstream()
        await jetstream.add_stream(
            name=nats_namespace.stream("orders"), subjects=[nats_namespace.subject("orders.>")]
        )
        # when
        await jetstream.publish(nats_namespace.subject("orders.created"), b"OrderCreated")
        subscription = await jetstream.pull_subscribe(nats_namespace.subject("orders.>"))
        messages = await subscription.fetch(1, timeout=5)
        await messages[0].ack()
    finally:
        await client.close()
    # then
    assert [message.data for message in messages] == [b"OrderCreated"]


async def test_cleaning_a_namespace_deletes_its_streams_and_buckets_and_nothing_else(
    nats_namespace: NatsNamespace,
) -> None:
    # given
    neighbour = new_nats_namespace(nats_namespace.url)
    client = await nats.connect(nats_namespace.url)
    try:
        jetstream = client.jetstream()
        stream = nats_namespace.stream("orders")
        await jetstream.add_stream(name=stream, subjects=[nats_namespace.subject("orders")])
        await jetstream.create_key_value(bucket=nats_namespace.stream("cache"))
        kept = neighbour.stream("orders")
        await jetstream.add_stream(name=kept, subjects=[neighbour.subject("orders")])
        try:
            # when
            deleted = await delete_nats_namespace(nats_namespace)
            # then
            assert sorted(deleted) == sorted([stream, f"KV_{nats_namespace.stream('cache')}"])
            with pytest.raises(nats.js.errors.NotFoundError):
                await jetstream.stream_info(stream)
            assert (await jetstream.stream_info(kept)).config.name == kept
        finally:
            await delete_nats_namespace(neighbour)
    finally:
        await client.close()


def test_a_stream_suffix_with_a_dot_is_rejected() -> None:
    # given
    namespace = new_nats_namespace("nats://127.0.0.1:1")
    # when / then
    with pytest.raises(ValueError, match="forbidden characters"):
        namespace.stream("orders.v1")


def test_the_prefix_is_a_valid_subject_token_and_stream_name() -> None:
    # given
    namespace = new_nats_namespace("nats://127.0.0.1:1")
    # when
    subject = namespace.subject("orders.*")
    stream = namespace.stream("orders")
    # then
    assert subject.split(".")[0] == namespace.prefix
    assert not set(stream) & set(".*> ")
