"""The shop running in the test's process, with an HTTP client speaking to it over ASGI."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from shop.api import create_app
from shop.settings import Settings
from shop.wiring import Shop, ShopOptions

TEST_OPTIONS = ShopOptions(
    order_ttl=timedelta(minutes=10),
    payment_timeout=timedelta(seconds=1),
    recovery_interval=1.0,
    saga_feed_grace=0.5,
)
"""Short saga timeouts and recovery for the tests; the orders' own TTL stays long."""


@dataclass
class Service:
    """The shop's app running in this process, and an HTTP client to it."""

    client: httpx.AsyncClient
    shop: Shop

    async def json(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        """Send a request, check its status, return its JSON body."""
        response = await self.client.request(method, path, **kwargs)
        assert response.status_code == expected, response.text
        return response.json()

    async def eventually(self, path: str, done: Callable[[Any], bool], within: float = 15.0) -> Any:
        """Poll ``GET path`` until ``done`` holds; fail after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            body = await self.json("GET", path, 200)
            if done(body):
                return body
            assert time.monotonic() < deadline, f"{path} never got there: {body}"
            await asyncio.sleep(0.05)


async def run_service(
    database_url: str, options: ShopOptions = TEST_OPTIONS
) -> AsyncIterator[Service]:
    """Run the app's lifespan (the shop started) and give a client speaking to it over ASGI."""
    app = create_app(Settings(database_url=database_url), options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            yield Service(client, app.state.shop)


def read_until(process: subprocess.Popen[str], marker: str, within: float) -> list[str]:
    """Return the lines ``process`` prints up to the one holding ``marker``.

    A thread reads the lines, so that a process that goes quiet (or never
    prints the marker) fails the test after ``within`` seconds, with its output.
    """
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return seen
    process.kill()
    _, errors = process.communicate()
    raise AssertionError(f"{marker!r} never came; the output was:\n" + "\n".join(seen) + errors)
