"""The messaging README's example: an orders service and a notifications service, two processes.

The orders service places three orders (state-stored, events to the outbox)
and its relay publishes them to a Redis stream; a copy of one message is
added to the stream, as a redelivery would; the notifications service, in
another process with its own database, sends each notification once. The
README shows both programs exactly as they are in ``examples/messaging``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from redis.asyncio import Redis

from cqrs_ddd_testing import RedisNamespace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "messaging"
README = ROOT / "packages" / "messaging" / "README.md"


async def run(*args: str, redis_url: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_orders_published_through_the_outbox_are_notified_once_in_another_process(
    redis_namespace: RedisNamespace, tmp_path: Path
) -> None:
    stream = redis_namespace.key("orders")
    orders_db = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    notifications_db = f"sqlite+aiosqlite:///{tmp_path / 'notifications.db'}"
    await run(
        str(EXAMPLES / "orders.py"), orders_db, stream, "o-1", "o-2", "o-3",
        redis_url=redis_namespace.url,
    )  # fmt: skip
    client = Redis.from_url(redis_namespace.url)
    try:
        entries = await client.xrange(stream)
        assert len(entries) == 3
        await client.xadd(stream, entries[0][1])  # the first order, delivered again
    finally:
        await client.aclose()

    output = await run(
        str(EXAMPLES / "notifications.py"), notifications_db, stream, "3",
        redis_url=redis_namespace.url,
    )  # fmt: skip

    lines = output.splitlines()
    assert lines[0] == "ready"
    assert sorted(lines[1:]) == [
        "notify c-1: order o-1, 9.90",
        "notify c-2: order o-2, 19.80",
        "notify c-3: order o-3, 29.70",
    ]


def test_the_readme_shows_both_programs_as_they_are() -> None:
    text = README.read_text(encoding="utf-8")
    for program in ("orders.py", "notifications.py"):
        source = (EXAMPLES / program).read_text(encoding="utf-8")
        assert f"```python\n{source}```" in text, f"the README's {program} differs from the file"
