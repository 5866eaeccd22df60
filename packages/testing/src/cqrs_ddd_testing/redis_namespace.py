"""A key prefix per test on a shared Redis database, and the cleanup that empties it.

Keys, streams and their consumer groups under the prefix are removed afterwards by
`delete_redis_namespace` (SCAN with MATCH, then UNLINK in batches). Pub/sub
channels hold no state and need no cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio

from cqrs_ddd_testing.naming import unique_name

__all__ = ["RedisNamespace", "delete_redis_namespace", "new_redis_namespace"]

_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class RedisNamespace:
    """The Redis URL and a key prefix that belongs to one test alone."""

    url: str
    prefix: str

    def key(self, suffix: str) -> str:
        """Return the key `<prefix>:<suffix>`."""
        return f"{self.prefix}:{suffix}"


def new_redis_namespace(url: str) -> RedisNamespace:
    """Return a namespace on `url` with a fresh unique prefix (nothing is sent to Redis)."""
    return RedisNamespace(url=url, prefix=unique_name())


async def delete_redis_namespace(namespace: RedisNamespace, *, limit: int = 100_000) -> int:
    """Delete every key that starts with the namespace's prefix; return how many went.

    It stops after `limit` keys so a runaway test cannot stall the teardown; keys
    past the limit stay. Connection errors propagate unchanged.
    """
    deleted = 0
    batch: list[bytes] = []
    async with redis.asyncio.Redis.from_url(namespace.url) as client:
        async for key in client.scan_iter(match=f"{namespace.prefix}*", count=_BATCH_SIZE):
            batch.append(key)
            if len(batch) == _BATCH_SIZE:
                deleted += await client.unlink(*batch)
                batch.clear()
            if deleted + len(batch) >= limit:
                break
        if batch:
            deleted += await client.unlink(*batch)
    return deleted
