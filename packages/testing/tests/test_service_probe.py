from __future__ import annotations

from cqrs_ddd_testing import NATS, POSTGRES, REDIS, ServiceProbe
from cqrs_ddd_testing.services import redact_url


class RecordingConnect:
    """A fake connector that records each attempt and answers as told."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.attempts: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int, connect_timeout: float) -> None:
        self.attempts.append((host, port))
        if self.error is not None:
            raise self.error


async def test_an_unreachable_service_is_probed_once_per_session() -> None:
    # given
    connect = RecordingConnect(ConnectionRefusedError(111, "Connection refused"))
    probe = ServiceProbe(connect=connect)
    # when
    first = await probe.problem(REDIS, "redis://127.0.0.1:1/0")
    second = await probe.problem(REDIS, "redis://127.0.0.1:1/0")
    # then
    assert connect.attempts == [("127.0.0.1", 1)]
    assert first == second
    assert first is not None
    assert first.startswith("Redis is not reachable at redis://127.0.0.1:1/0")
    assert first.endswith("Connection refused")


async def test_a_reachable_service_is_probed_once_and_has_no_problem() -> None:
    # given
    connect = RecordingConnect()
    probe = ServiceProbe(connect=connect)
    # when
    problems = [await probe.problem(NATS, "nats://127.0.0.1:4222") for _ in range(3)]
    # then
    assert problems == [None, None, None]
    assert connect.attempts == [("127.0.0.1", 4222)]


async def test_a_service_that_does_not_answer_in_time_is_unreachable() -> None:
    # given
    probe = ServiceProbe(timeout=2.5, connect=RecordingConnect(TimeoutError()))
    # when
    problem = await probe.problem(POSTGRES, "postgresql://postgres@db.invalid/postgres")
    # then
    assert problem is not None
    assert problem.endswith("no answer within 2.5 s")


async def test_a_url_without_a_port_is_probed_on_the_service_default_port() -> None:
    # given
    connect = RecordingConnect()
    probe = ServiceProbe(connect=connect)
    # when
    await probe.problem(POSTGRES, "postgresql://postgres@db.internal/postgres")
    # then
    assert connect.attempts == [("db.internal", 5432)]


def test_a_password_in_a_url_is_hidden() -> None:
    # given
    url = "amqp://guest:guest@127.0.0.1:5672/"
    # when
    redacted = redact_url(url)
    # then
    assert redacted == "amqp://guest:***@127.0.0.1:5672/"


def test_a_url_without_a_password_is_shown_unchanged() -> None:
    # given
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    # when / then
    assert redact_url(url) == url
