"""`python -m shop` as a command line: help, settings, exit statuses, one-line errors, serving.

The command-line cases run the real command in a subprocess, in a fresh
folder (so no `shop.sqlite` lands in the repository), with `DATABASE_URL` set
as the case says; the settings' answer to each kind of URL is checked in this
process. A bad URL is refused before anything connects, and the unreachable
database is a port nothing listens on. The last cases serve the shop from a
real uvicorn process, run the scenario over HTTP and stop it with Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from shop_testing import read_until

from shop.__main__ import run
from shop.settings import DEFAULT_DATABASE_URL, Settings, SettingsError

USAGE_ERROR = 2
RUN_FAILED = 1


def shop_command(
    folder: Path, *arguments: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    if database_url is not None:
        environment["DATABASE_URL"] = database_url
    return subprocess.run(  # noqa: S603 - our own interpreter running the shop
        [sys.executable, "-m", "shop", *arguments],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def the_one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("python -m shop: error: "), stderr
    return lines[0]


def test_help_shows_the_options_and_settings_and_does_nothing_else(tmp_path: Path) -> None:
    # when
    result = shop_command(tmp_path, "--help")
    # then
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: python -m shop")
    for promised in (
        "--database-url",
        "--host",
        "--port",
        "--no-scenario",
        "--order-ttl",
        "DATABASE_URL",
        "RABBITMQ_URL",
        "exit status",
    ):
        assert promised in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing ran, no database was made


@pytest.mark.parametrize(
    ("database_url", "named_problem"),
    [
        pytest.param(
            "postgresql://shop:secret@db.example/shop",
            "has no async driver: use postgresql+asyncpg://shop:***@db.example/shop",
            id="postgresql-without-asyncpg",
        ),
        pytest.param(
            "sqlite:///shop.sqlite",
            "has no async driver: use sqlite+aiosqlite:///shop.sqlite",
            id="sqlite-without-aiosqlite",
        ),
        pytest.param("mysql://x", "names a database the shop does not run on (mysql)", id="mysql"),
        pytest.param("nonsense", "is not a database URL: use sqlite+aiosqlite://", id="nonsense"),
    ],
)
def test_a_database_url_the_shop_cannot_use_is_one_line_and_status_2(
    tmp_path: Path, database_url: str, named_problem: str
) -> None:
    # when
    result = shop_command(tmp_path, database_url=database_url)
    # then
    assert result.returncode == USAGE_ERROR
    line = the_one_line(result.stderr)
    assert line.startswith("python -m shop: error: DATABASE_URL '")
    assert named_problem in line
    assert "secret" not in line
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_database_url_option_overrides_the_environment_and_is_named_in_errors(
    tmp_path: Path,
) -> None:
    # when
    result = shop_command(
        tmp_path, "--database-url", "mysql://x", database_url=DEFAULT_DATABASE_URL
    )
    # then
    assert result.returncode == USAGE_ERROR
    assert "error: --database-url 'mysql://x' names a database" in the_one_line(result.stderr)


def test_an_unknown_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    with pytest.raises(SystemExit) as exited:
        run(["--no-such-option"], environ={})
    # then
    assert exited.value.code == USAGE_ERROR
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_database_that_refuses_the_connection_is_one_line_and_status_1(
    tmp_path: Path,
) -> None:
    # given: nothing listens on port 1
    database_url = "postgresql+asyncpg://shop:secret@127.0.0.1:1/shop"
    # when
    result = shop_command(tmp_path, database_url=database_url)
    # then
    assert result.returncode == RUN_FAILED
    line = the_one_line(result.stderr)
    assert "cannot reach the database 'postgresql+asyncpg://shop:***@127.0.0.1:1/shop'" in line
    assert "(DATABASE_URL)" in line
    assert "start the server" in line
    assert "secret" not in line
    assert result.stdout == ""


def test_a_sqlite_file_that_cannot_be_opened_is_one_line_and_status_1(tmp_path: Path) -> None:
    # given: the "file" is a folder; aiosqlite's worker thread outlives the failed
    # connection, and its traceback must not follow the one line (see wait_for_sqlite_workers)
    (tmp_path / "shop.sqlite").mkdir()
    # when
    result = shop_command(tmp_path, database_url="sqlite+aiosqlite:///shop.sqlite")
    # then
    assert result.returncode == RUN_FAILED
    line = the_one_line(result.stderr)
    assert "cannot use the database 'sqlite+aiosqlite:///shop.sqlite' (DATABASE_URL)" in line
    assert "unable to open database file" in line


def test_settings_take_the_option_over_the_environment_and_default_to_shop_sqlite() -> None:
    # given
    environment = {"DATABASE_URL": "sqlite+aiosqlite:///from-environment.sqlite"}
    # when
    from_option = Settings.from_environment(
        environment, database_url="sqlite+aiosqlite:///from-option.sqlite"
    )
    from_environment = Settings.from_environment(environment)
    unset = Settings.from_environment({"DATABASE_URL": ""})
    # then
    assert (from_option.database_url, from_option.source) == (
        "sqlite+aiosqlite:///from-option.sqlite",
        "--database-url",
    )
    assert (from_environment.database_url, from_environment.source) == (
        "sqlite+aiosqlite:///from-environment.sqlite",
        "DATABASE_URL",
    )
    assert unset.database_url == DEFAULT_DATABASE_URL


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        pytest.param(
            "postgres://shop@db.example/shop",
            "DATABASE_URL 'postgres://shop@db.example/shop' uses the scheme 'postgres', which"
            " SQLAlchemy does not know: use postgresql+asyncpg://shop@db.example/shop",
            id="postgres-scheme",
        ),
        pytest.param(
            "postgresql+psycopg://shop@db.example/shop",
            "DATABASE_URL 'postgresql+psycopg://shop@db.example/shop' names the driver 'psycopg',"
            " which the shop does not use: use postgresql+asyncpg://shop@db.example/shop",
            id="another-driver",
        ),
        pytest.param(
            "sqlite+aiosqlite:///no/such/folder/shop.sqlite",
            "DATABASE_URL 'sqlite+aiosqlite:///no/such/folder/shop.sqlite' names a file in the"
            " folder 'no/such/folder', which does not exist: create the folder or name a file"
            " in an existing one",
            id="missing-folder",
        ),
        pytest.param(
            "postgresql+asyncpg://shop@db.example:port/shop",
            "DATABASE_URL 'postgresql+asyncpg://shop@db.example:port/shop' is not a database URL:"
            " use sqlite+aiosqlite:///shop.sqlite or"
            " postgresql+asyncpg://user:password@host:5432/database",
            id="port-not-a-number",
        ),
    ],
)
def test_settings_say_what_is_wrong_with_a_url_and_what_to_use(
    database_url: str, message: str
) -> None:
    # when
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment({"DATABASE_URL": database_url})
    # then
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "database_url",
    [
        "sqlite+aiosqlite:///shop.sqlite",
        "postgresql+asyncpg://shop:secret@db.example:5432/shop",
        "postgresql+asyncpg:///shop",
    ],
)
def test_settings_accept_the_urls_the_shop_runs_on(database_url: str) -> None:
    assert Settings(database_url=database_url).database_url == database_url


def test_settings_refuse_a_bad_url_when_made() -> None:
    # when
    with pytest.raises(SettingsError) as refused:
        Settings(database_url="postgresql://shop:secret@db.example/shop")
    # then
    assert str(refused.value) == (
        "DATABASE_URL 'postgresql://shop:***@db.example/shop' has no async driver:"
        " use postgresql+asyncpg://shop:***@db.example/shop"
    )


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused_as_a_setting(url: str) -> None:
    with pytest.raises(SettingsError, match="in-memory SQLite database"):
        Settings(database_url=url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_service_runs_the_scenario_over_http_and_serves_until_ctrl_c(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url}
    for variable in ("RABBITMQ_URL", "NATS_URL", "REDIS_URL"):
        environment.pop(variable, None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running the shop
        [sys.executable, "-m", "shop", "--port", str(port)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = "\n".join(read_until(process, "until Ctrl-C", within=120))
        for seen in (
            f"the shop serves http://127.0.0.1:{port}",
            f"API docs: http://127.0.0.1:{port}/docs",
            "the same order (True), placed once",
            "undo: 2 x tea, 1 x mug, 21.00 EUR",
            "redo: 2 x tea, 2 x mug, 33.00 EUR",
            "merged into {'address': '1 Analytical Street', 'slot': 'mornings'}",
            ": 409, address was changed",
            "the fulfilment saga: completed (reserving done, charging done, confirming done)",
            "the saga compensated: PaymentDeclinedError",
            "the order is cancelled: the order could not be fulfilled",
            "held for orders: 1 before, 1 after",
            "the scheduled expiry ran: the order is expired",
            "ada's orders, largest first (3 in all, the first 3)",
            "report 20",
            "health: ok",
        ):
            assert seen in output, output
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors, errors


def test_a_port_already_taken_is_one_line_and_status_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = shop_command(tmp_path, "--port", str(port), "--no-scenario")
    assert result.returncode == RUN_FAILED
    line = the_one_line(result.stderr)
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in line
