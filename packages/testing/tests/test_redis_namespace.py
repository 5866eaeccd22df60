from __future__ import annotations

import redis.asyncio

from cqrs_ddd_testing import RedisNamespace, delete_redis_namespace, new_redis_namespace


async def test_a_stream_under_the_prefix_carries_one_message(
    redis_namespace: RedisNamespace,
) -> None:
    # given
    stream = redis_namespace.key("events")
    async with redis.asyncio.Redis.from_url(redis_namespace.url) as client:
        # when
        await client.xadd(stream, {"type": "OrderCreated"})
        entries = await client.xrange(stream)
    # then
    assert entries is not None
    assert [fields for _, fields in entries] == [{b"type": b"OrderCreated"}]


async def test_cleaning_a_namespace_deletes_its_keys_and_streams_and_nothing_else(
    redis_namespace: RedisNamespace,
) -> None:
    # given
    neighbour = new_redis_namespace(redis_namespace.url)
    async with redis.asyncio.Redis.from_url(redis_namespace.url) as client:
        await client.set(redis_namespace.key("a"), "1")
        await client.set(redis_namespace.key("b"), "2")
        await client.xadd(redis_namespace.key("events"), {"n": "1"})
        await client.set(neighbour.key("kept"), "3")
        try:
            # when
            deleted = await delete_redis_namespace(redis_namespace)
            # then
            assert deleted == 3
            assert await client.keys(f"{redis_namespace.prefix}*") == []
            assert await client.get(neighbour.key("kept")) == b"3"
        finally:
            await delete_redis_namespace(neighbour)


async def test_cleaning_stops_at_the_limit(redis_namespace: RedisNamespace) -> None:
    # given
    async with redis.asyncio.Redis.from_url(redis_namespace.url) as client:
        for number in range(5):
            await client.set(redis_namespace.key(str(number)), number)
        # when
        deleted = await delete_redis_namespace(redis_namespace, limit=2)
        # then
        assert deleted == 2
        assert len(await client.keys(f"{redis_namespace.prefix}*")) == 3


def test_a_namespace_key_starts_with_its_prefix() -> None:
    # given
    namespace = new_redis_namespace("redis://127.0.0.1:1/0")
    # when
    key = namespace.key("orders")
    # then
    assert key == f"{namespace.prefix}:orders"
