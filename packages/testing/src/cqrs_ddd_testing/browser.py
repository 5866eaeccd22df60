"""A real headless Chromium for tests that drive a page, and screenshots of what it shows.

The `browser` fixture gives each test its own Chromium (a fresh profile: no cookies,
storage or cache from another test), driven through Selenium and the chromedriver of
Debian's `chromium-driver` package, and quits it after the test. Selenium never looks
for or downloads a driver or a browser of its own (Selenium Manager is not used): both
paths are given to it.

When Chromium or chromedriver is missing, the test is skipped with a reason that names
`bash scripts/install-chromium.sh`; with `CQRS_DDD_REQUIRE_SERVICES=1` (as in CI) it
fails instead, like a test whose backing service does not answer.

`save_screenshot` writes what a driver shows as a PNG file into the artifacts folder,
`test-artifacts/` at the repository's root unless `CQRS_DDD_ARTIFACTS` names another.

Selenium is imported only when a browser starts, so a test run without browser tests
never pays for importing it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cqrs_ddd_testing.availability import REQUIRE_SERVICES_VARIABLE, are_services_required

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver as ChromeDriver
    from selenium.webdriver.remote.webdriver import WebDriver

__all__ = [
    "ARTIFACTS_VARIABLE",
    "BROWSER_MARKER",
    "CHROMEDRIVER_VARIABLE",
    "CHROMIUM_ARGUMENTS",
    "CHROMIUM_VARIABLE",
    "DEFAULT_CHROMEDRIVER",
    "DEFAULT_CHROMIUM",
    "INSTALL_COMMAND",
    "artifacts_directory",
    "browser",
    "chromedriver_path",
    "chromium_path",
    "chromium_problem",
    "require_chromium",
    "save_screenshot",
    "start_chromium",
]

BROWSER_MARKER = "browser"
"""The marker of every test that uses the `browser` fixture (`pytest -m browser`)."""

CHROMIUM_VARIABLE = "CQRS_DDD_CHROMIUM"
"""Names the Chromium executable to drive instead of `DEFAULT_CHROMIUM`."""

CHROMEDRIVER_VARIABLE = "CQRS_DDD_CHROMEDRIVER"
"""Names the chromedriver executable to use instead of `DEFAULT_CHROMEDRIVER`."""

DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
"""Where Debian's `chromium` package puts the browser."""

DEFAULT_CHROMEDRIVER = Path("/usr/bin/chromedriver")
"""Where Debian's `chromium-driver` package puts the driver."""

INSTALL_COMMAND = "bash scripts/install-chromium.sh"
"""The repository's command that installs both from Debian's packages."""

ARTIFACTS_VARIABLE = "CQRS_DDD_ARTIFACTS"
"""Names the folder that screenshots go to instead of `test-artifacts/` at the root."""

CHROMIUM_ARGUMENTS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
"""Headless, fit for a container run as root (no sandbox, no /dev/shm), 1400 x 1000."""

_UNSAFE_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def chromium_path() -> Path:
    """Return the Chromium executable: `CQRS_DDD_CHROMIUM`, or `/usr/bin/chromium`."""
    return Path(os.environ.get(CHROMIUM_VARIABLE) or DEFAULT_CHROMIUM)


def chromedriver_path() -> Path:
    """Return the chromedriver executable: `CQRS_DDD_CHROMEDRIVER`, or `/usr/bin/chromedriver`."""
    return Path(os.environ.get(CHROMEDRIVER_VARIABLE) or DEFAULT_CHROMEDRIVER)


def chromium_problem() -> str | None:
    """Return why a browser cannot start here, or `None` when both executables are there."""
    missing = [
        f"{what} ({path}, from {variable} or its default)"
        for what, path, variable in (
            ("Chromium", chromium_path(), CHROMIUM_VARIABLE),
            ("chromedriver", chromedriver_path(), CHROMEDRIVER_VARIABLE),
        )
        if not (path.is_file() and os.access(path, os.X_OK))
    ]
    if not missing:
        return None
    return f"headless Chromium is not installed: no executable {' and no '.join(missing)}"


def require_chromium() -> None:
    """Return when Chromium and chromedriver are installed; otherwise skip or fail the test.

    The test is skipped unless `CQRS_DDD_REQUIRE_SERVICES=1`, in which case it fails.
    Either way the message names the command that installs them.
    """
    problem = chromium_problem()
    if problem is None:
        return
    if are_services_required():
        pytest.fail(
            f"{problem}; install it with `{INSTALL_COMMAND}`; "
            f"{REQUIRE_SERVICES_VARIABLE}=1 makes this a failure",
            pytrace=False,
        )
    pytest.skip(
        f"{problem}; install it with `{INSTALL_COMMAND}` "
        f"({REQUIRE_SERVICES_VARIABLE}=1 fails instead of skipping)"
    )


def start_chromium(arguments: tuple[str, ...] = CHROMIUM_ARGUMENTS) -> ChromeDriver:
    """Start a headless Chromium with a fresh profile and return the Selenium driver on it.

    It uses `chromium_path()` and `chromedriver_path()` as they are, so Selenium never
    runs Selenium Manager to find or download either. The caller must `quit()` the
    driver. Raises Selenium's `WebDriverException` when Chromium does not start.
    """
    # Late on purpose: importing Selenium costs about 0.3 s, paid only by browser tests.
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.chrome.webdriver import WebDriver as Chrome  # noqa: PLC0415

    options = Options()
    options.binary_location = str(chromium_path())
    for argument in arguments:
        options.add_argument(argument)
    service = Service(executable_path=str(chromedriver_path()))
    return Chrome(options=options, service=service)


@pytest.fixture
def browser() -> Iterator[ChromeDriver]:
    """Give the test its own headless Chromium (fresh profile), quit after the test.

    It skips the test when Chromium or chromedriver is missing, or fails it under
    `CQRS_DDD_REQUIRE_SERVICES=1`. Tests that use it get the `browser` marker.
    """
    require_chromium()
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _repository_root(start: Path) -> Path:
    """Return the nearest folder from `start` upwards that holds `.git`, else `start`."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def artifacts_directory() -> Path:
    """Return the folder for test artifacts, without creating it.

    It is `CQRS_DDD_ARTIFACTS` when set (a relative path counts from the current
    folder), otherwise `test-artifacts/` in the repository that holds the current
    folder (the current folder itself outside a repository).
    """
    configured = os.environ.get(ARTIFACTS_VARIABLE)
    if configured:
        return Path(configured).absolute()
    return _repository_root(Path.cwd().absolute()) / "test-artifacts"


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """Save what `driver` shows as `<name>.png` in `artifacts_directory()`; return its path.

    The folder is created when missing and a file of the same name is replaced.
    Characters other than letters, digits, `.`, `_` and `-` in `name` become `_`, so a
    test's node id makes a fine name. Raises `ValueError` for a name with nothing left.
    """
    stem = _UNSAFE_FILE_NAME_CHARACTERS.sub("_", name.removesuffix(".png")).strip("._")
    if not stem:
        raise ValueError(f"{name!r} cannot name a screenshot file")
    directory = artifacts_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.png"
    path.write_bytes(driver.get_screenshot_as_png())
    return path
