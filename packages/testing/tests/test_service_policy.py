"""What an inner pytest run does when a service is missing, and which tests it marks."""

from __future__ import annotations

import pytest

from cqrs_ddd_testing import REQUIRE_SERVICES_VARIABLE, SERVICES, Service

pytest_plugins = ["pytester"]

CLOSED_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:1/postgres",
    "redis": "redis://127.0.0.1:1/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:1/",
    "nats": "nats://127.0.0.1:1",
}

each_service = pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.marker)


def _test_file_using(service: Service) -> str:
    return f"async def test_needs_the_service({service.fixture}):\n    pass\n"


@each_service
def test_a_test_whose_service_is_unreachable_is_skipped_with_a_reason_naming_it(
    inner_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, service: Service
) -> None:
    # given
    monkeypatch.setenv(service.environment_variable, CLOSED_URLS[service.marker])
    monkeypatch.delenv(REQUIRE_SERVICES_VARIABLE, raising=False)
    inner_pytester.makepyfile(_test_file_using(service))
    # when
    result = inner_pytester.runpytest("-rs")
    # then
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED*{service.name} is not reachable at *127.0.0.1:1*{service.environment_variable}*"]
    )


@each_service
def test_a_test_whose_service_is_unreachable_fails_when_services_are_required(
    inner_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, service: Service
) -> None:
    # given
    monkeypatch.setenv(service.environment_variable, CLOSED_URLS[service.marker])
    monkeypatch.setenv(REQUIRE_SERVICES_VARIABLE, "1")
    inner_pytester.makepyfile(_test_file_using(service))
    # when
    result = inner_pytester.runpytest()
    # then
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [f"*{service.name} is not reachable at *127.0.0.1:1*{REQUIRE_SERVICES_VARIABLE}=1*"]
    )


def test_a_password_in_the_url_stays_out_of_the_skip_reason(
    inner_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    service = next(service for service in SERVICES if service.marker == "rabbitmq")
    monkeypatch.setenv(service.environment_variable, "amqp://guest:s3cret@127.0.0.1:1/")
    monkeypatch.delenv(REQUIRE_SERVICES_VARIABLE, raising=False)
    inner_pytester.makepyfile(_test_file_using(service))
    # when
    result = inner_pytester.runpytest("-rs")
    # then
    result.stdout.fnmatch_lines(["SKIPPED*amqp://guest:***@127.0.0.1:1/*"])
    assert "s3cret" not in result.stdout.str()


@each_service
def test_a_test_using_a_service_fixture_is_selected_by_the_service_marker(
    inner_pytester: pytest.Pytester, service: Service
) -> None:
    # given
    inner_pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def wrapped({service.fixture}):
            return {service.fixture}

        async def test_uses_the_service({service.fixture}):
            pass

        async def test_uses_it_through_another_fixture(wrapped):
            pass

        async def test_uses_no_service():
            pass
        """
    )
    # when
    result = inner_pytester.runpytest("--collect-only", "-q", "-m", service.marker)
    # then
    result.stdout.fnmatch_lines(
        [
            "*::test_uses_the_service",
            "*::test_uses_it_through_another_fixture",
            "*2/3 tests collected (1 deselected)*",
        ]
    )
    assert "test_uses_no_service" not in result.stdout.str()
