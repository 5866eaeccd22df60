"""The `browser` fixture drives a real headless Chromium; screenshots land as PNG files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from cqrs_ddd_testing import REQUIRE_SERVICES_VARIABLE
from cqrs_ddd_testing.browser import (
    ARTIFACTS_VARIABLE,
    CHROMEDRIVER_VARIABLE,
    artifacts_directory,
    save_screenshot,
    start_chromium,
)

pytest_plugins = ["pytester"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PAGE = b"""<!doctype html>
<html>
  <head><meta charset="utf-8"><title>Counter</title></head>
  <body>
    <button id="add" type="button">Add one</button>
    <p id="count">0 clicks</p>
    <script>
      let clicks = 0;
      document.getElementById("add").addEventListener("click", () => {
        clicks += 1;
        const noun = clicks === 1 ? "click" : "clicks";
        document.getElementById("count").textContent = clicks + " " + noun;
      });
    </script>
  </body>
</html>
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE if self.path == "/" else b"not found"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="page-server", daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv(ARTIFACTS_VARIABLE, str(folder))
    return folder


def test_a_click_runs_the_page_script_and_the_screenshot_is_a_png(
    browser: WebDriver, page_url: str
) -> None:
    # given
    browser.get(page_url)
    assert browser.find_element(By.ID, "count").text == "0 clicks"
    # when
    browser.find_element(By.ID, "add").click()
    browser.find_element(By.ID, "add").click()
    WebDriverWait(browser, 5).until(
        lambda driver: driver.find_element(By.ID, "count").text == "2 clicks"
    )
    screenshot = save_screenshot(browser, "test_browser_fixture counter after two clicks")
    # then (the file stays in test-artifacts/, or CQRS_DDD_ARTIFACTS, for a person to look at)
    assert screenshot == artifacts_directory() / "test_browser_fixture_counter_after_two_clicks.png"
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    assert browser.title == "Counter"


def test_the_browser_is_headless_chromium_with_the_configured_window(browser: WebDriver) -> None:
    # when
    capabilities = browser.capabilities
    size = browser.get_window_size()
    # then
    assert capabilities["browserName"] == "chrome"
    assert "HeadlessChrome" in browser.execute_script("return navigator.userAgent")
    assert (size["width"], size["height"]) == (1400, 1000)


def test_each_browser_starts_with_a_fresh_profile(browser: WebDriver, page_url: str) -> None:
    # given
    browser.get(page_url)
    browser.add_cookie({"name": "left", "value": "behind"})
    browser.execute_script("localStorage.setItem('left', 'behind')")
    # when
    other = start_chromium()
    try:
        other.get(page_url)
        cookies = other.get_cookies()
        stored = other.execute_script("return localStorage.getItem('left')")
    finally:
        other.quit()
    # then
    assert cookies == []
    assert stored is None
    assert browser.get_cookie("left") is not None


def test_a_screenshot_name_is_made_safe_for_a_file_name(
    browser: WebDriver, artifacts: Path
) -> None:
    # when
    path = save_screenshot(browser, "tests/test_x.py::test_y[case 1].png")
    # then
    assert path == artifacts / "tests_test_x.py_test_y_case_1.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_screenshots_go_to_test_artifacts_at_the_repository_root_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    (repository / "packages" / "testing").mkdir(parents=True)
    monkeypatch.chdir(repository / "packages" / "testing")
    monkeypatch.delenv(ARTIFACTS_VARIABLE, raising=False)
    # when
    folder = artifacts_directory()
    # then
    assert folder == repository / "test-artifacts"
    assert not folder.exists()


def _uses_the_browser() -> str:
    return "def test_needs_a_browser(browser):\n    pass\n"


def test_without_chromedriver_a_browser_test_is_skipped_naming_the_install_script(
    inner_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv(CHROMEDRIVER_VARIABLE, "/nonexistent/chromedriver")
    monkeypatch.delenv(REQUIRE_SERVICES_VARIABLE, raising=False)
    inner_pytester.makepyfile(_uses_the_browser())
    # when
    result = inner_pytester.runpytest("-rs")
    # then
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*/nonexistent/chromedriver*`bash scripts/install-chromium.sh`*"]
    )


def test_without_chromedriver_a_browser_test_fails_when_services_are_required(
    inner_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv(CHROMEDRIVER_VARIABLE, "/nonexistent/chromedriver")
    monkeypatch.setenv(REQUIRE_SERVICES_VARIABLE, "1")
    inner_pytester.makepyfile(_uses_the_browser())
    # when
    result = inner_pytester.runpytest()
    # then
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*/nonexistent/chromedriver*install-chromium.sh*{REQUIRE_SERVICES_VARIABLE}=1*"]
    )


def test_a_test_using_the_browser_is_selected_by_the_browser_marker(
    inner_pytester: pytest.Pytester,
) -> None:
    # given
    inner_pytester.makepyfile(
        """
        def test_uses_the_browser(browser):
            pass

        def test_uses_no_browser():
            pass
        """
    )
    # when
    result = inner_pytester.runpytest("--collect-only", "-q", "-m", "browser")
    # then
    result.stdout.fnmatch_lines(["*::test_uses_the_browser", "*1/2 tests collected*"])
