"""Whether a backing service answers, and what a test does when it doesn't.

A `ServiceProbe` opens one TCP connection per service and URL and remembers the
answer for the rest of the session, so a missing service costs one timeout, not one
per test. `ServiceProbe.require` then skips the test with a reason that names the
service, its URL and how to start it; with `CQRS_DDD_REQUIRE_SERVICES=1` (as in CI)
it fails the test instead, so a missing service can never turn a run green.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest

from cqrs_ddd_testing.services import Service, redact_url

__all__ = [
    "REQUIRE_SERVICES_VARIABLE",
    "Connect",
    "ServiceProbe",
    "are_services_required",
    "tcp_connect",
]

REQUIRE_SERVICES_VARIABLE = "CQRS_DDD_REQUIRE_SERVICES"
"""Set it to `1` to fail, rather than skip, the tests whose service is unreachable."""

Connect = Callable[[str, int, float], Awaitable[None]]
"""Opens and closes one connection to host and port within a timeout in seconds.

It raises `OSError` or `TimeoutError` when the service does not answer.
"""


async def tcp_connect(host: str, port: int, connect_timeout: float) -> None:
    """Open a TCP connection to `host`:`port` and close it again.

    Raises `OSError` when the connection is refused and `TimeoutError` when it
    takes longer than `connect_timeout` seconds.
    """
    async with asyncio.timeout(connect_timeout):
        _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()


def are_services_required() -> bool:
    """Tell whether `CQRS_DDD_REQUIRE_SERVICES` asks to fail on a missing service."""
    value = os.environ.get(REQUIRE_SERVICES_VARIABLE, "")
    return value.strip().lower() in {"1", "true", "yes"}


class ServiceProbe:
    """Checks once per service and URL whether the service accepts connections.

    One probe lives for the whole pytest session (the plugin's session fixture
    `cqrs_ddd_service_probe`); it caches both outcomes, reachable or not.
    """

    def __init__(self, *, timeout: float = 3.0, connect: Connect = tcp_connect) -> None:
        self._timeout = timeout
        self._connect = connect
        self._problems: dict[tuple[str, str], str | None] = {}

    async def problem(self, service: Service, url: str) -> str | None:
        """Return why `service` at `url` is unreachable, or `None` when it answers."""
        key = (service.name, url)
        if key not in self._problems:
            self._problems[key] = await self._probe(service, url)
        return self._problems[key]

    async def require(self, service: Service, url: str) -> None:
        """Return when `service` answers at `url`; otherwise skip or fail the current test.

        The test is skipped unless `CQRS_DDD_REQUIRE_SERVICES=1`, in which case it fails.
        """
        problem = await self.problem(service, url)
        if problem is None:
            return
        if are_services_required():
            pytest.fail(
                f"{problem}; {REQUIRE_SERVICES_VARIABLE}=1 makes this a failure",
                pytrace=False,
            )
        pytest.skip(
            f"{problem}; start it (for example `{service.start_command}`) or point "
            f"{service.environment_variable} at a running server "
            f"({REQUIRE_SERVICES_VARIABLE}=1 fails instead of skipping)"
        )

    async def _probe(self, service: Service, url: str) -> str | None:
        host, port = service.address(url)
        try:
            await self._connect(host, port, self._timeout)
        except TimeoutError:
            reason = f"no answer within {self._timeout:g} s"
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
        else:
            return None
        return (
            f"{service.name} is not reachable at {redact_url(url)} "
            f"(from {service.environment_variable} or its default): {reason}"
        )
