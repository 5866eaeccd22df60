"""The shop's operations page (`/ops`) in a real headless Chromium, on a shop served for real.

The shop runs as `python -m shop` (uvicorn) with `SHOP_OPS_ACTIONS=1` and a
token. The test places and pays orders over HTTP, then stores a product event
the projector cannot read, as a bad deploy or a hand-edited row would: the
shop's projection worker sets it aside (a dead letter) and goes on. The
operator mends the stored payload, finds the dead letter on the page with its
reason, is refused without the token, enters it, replays from the page, and
the read model shows the product. Screenshots of the overview and of the sagas
page are kept in `test-artifacts/`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ops_web_support import GHOST, append_undecodable_product, mend_product
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from shop_testing import read_until

from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_testing.browser import save_screenshot
from shop.settings import Settings, SettingsError

TOKEN = "a-long-operator-token-for-the-browser-test"  # noqa: S105 - the test's own token


@dataclass(frozen=True)
class ServedShop:
    """The shop served by `python -m shop` on a free port."""

    base: str
    database_url: str
    backend: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served_shop(tmp_path: Path, database_url: str) -> Iterator[ServedShop]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SHOP_OPS_TOKEN": TOKEN,
        "SHOP_OPS_ACTIONS": "1",
    }
    for variable in ("RABBITMQ_URL", "NATS_URL", "REDIS_URL"):
        environment.pop(variable, None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running the shop
        [sys.executable, "-m", "shop", "--port", str(port), "--no-scenario"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(process, "until Ctrl-C", within=60)
        backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        yield ServedShop(f"http://127.0.0.1:{port}", database_url, backend)
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors, errors


def eventually(check: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    """Return check()'s first truthy answer; fail saying ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        answer = check()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def fill_the_shop(client: httpx.Client) -> None:
    """Give the shop a customer, two products, a paid order and a declined one."""

    def sent(method: str, path: str, expected: int, body: Any) -> Any:
        response = client.request(method, path, json=body)
        assert response.status_code == expected, response.text
        return response.json()

    sent("POST", "/customers", 201, {"customer_id": "ada", "name": "Ada"})
    for sku, price in (("tea", "4.50"), ("mug", "12.00")):
        sent(
            "POST", "/products", 201, {"sku": sku, "name": sku.title(), "price": price, "stock": 9}
        )
    for sku, card in (("tea", "card-ok"), ("mug", "card-declined")):
        order = sent(
            "POST", "/orders", 201, {"customer_id": "ada", "lines": [{"sku": sku, "quantity": 2}]}
        )
        sent("POST", f"/orders/{order['order_id']}/checkout", 202, {"payment_method": card})


def text_of(browser: WebDriver, selector: str) -> str:
    """Return the text of the first element ``selector`` finds ("" while the page changes)."""
    try:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:  # replaced by a refresh or a navigation meanwhile
        return ""


PRODUCTS_ROW = '#workers tr[data-key="shop.products"]'


def test_an_operator_replays_a_dead_letter_from_the_page_with_the_token(
    served_shop: ServedShop, browser: WebDriver
) -> None:
    shop = served_shop
    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))
    with httpx.Client(base_url=shop.base, timeout=10) as client:
        fill_the_shop(client)
        position = asyncio.run(
            _on_the_database(shop.database_url, append_undecodable_product, GHOST)
        )

        # the overview refreshes by itself until the shop's worker has set the event aside
        browser.get(f"{shop.base}/ops/")
        assert browser.title == "Overview · operations"
        wait.until(lambda _: browser.find_element(By.ID, "live").get_attribute("data-refreshed-at"))
        wait.until(lambda _: text_of(browser, PRODUCTS_ROW).split()[-1:] == ["1"])
        for worker in ("shop.orders", "scheduled commands", "saga instances", "outbox table"):
            assert text_of(browser, f'#workers tr[data-key="{worker}"]').startswith(worker)

        # the operator mends the stored event, then replays it from the page
        asyncio.run(_on_the_database(shop.database_url, mend_product, position))
        replay_from_the_page(browser, wait, position)
        listed = eventually(
            lambda: [p for p in client.get("/products").json()["items"] if p["sku"] == GHOST],
            "the replayed product in the read model",
        )
        assert (listed[0]["name"], listed[0]["price"]) == ("Ghost", "7.00")

    sagas_shot = look_at_the_declined_orders_saga(browser, wait, shop.backend)
    browser.get(f"{shop.base}/ops/")
    wait.until(lambda _: text_of(browser, PRODUCTS_ROW).split()[-1:] == ["0"])
    overview_shot = save_screenshot(browser, f"ops-page-overview-{shop.backend}")
    for shot in (overview_shot, sagas_shot):
        assert shot.is_file()
        assert shot.stat().st_size > 10_000


def replay_from_the_page(browser: WebDriver, wait: WebDriverWait[WebDriver], position: int) -> None:
    """Find the dead letter with its reason; replay: refused without the token, done with it."""
    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    letter = wait.until(
        lambda _: browser.find_element(
            By.CSS_SELECTOR, f'#dead-letters-shop-products tr[data-key="{position}"]'
        )
    )
    assert "ghost" in letter.text
    assert "EventDeserializationError: malformed 'ProductAdded' event" in letter.text
    assert "price: Field required" in letter.text

    # without the token: refused, nothing done
    browser.find_element(By.ID, "replay-shop-products").click()
    refusal = wait.until(lambda _: browser.find_element(By.ID, "refusal"))
    assert browser.title == "Action refused · operations"
    assert "this action needs the operator token" in refusal.text
    browser.find_element(By.ID, "back").click()
    wait.until(lambda _: browser.find_element(By.ID, "dead-letters-shop-products"))
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-key="{position}"]')

    # the token, entered once, is kept in a strict, HTTP-only cookie
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "token-submit").click()
    wait.until(lambda _: "Token accepted" in text_of(browser, "#flash"))
    cookie = browser.get_cookie("cqrs_ddd_ops_token")
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ops")

    # with it: the dead letter is applied and gone
    browser.find_element(By.ID, "replay-shop-products").click()
    wait.until(lambda _: "1 applied" in text_of(browser, "#flash"))
    assert text_of(browser, "#dead-letters-shop-products") == "No dead letter."


def look_at_the_declined_orders_saga(
    browser: WebDriver, wait: WebDriverWait[WebDriver], backend: str
) -> Path:
    """Open the compensated saga: its path through the steps; return the screenshot's path."""
    browser.find_element(By.LINK_TEXT, "Sagas").click()
    browser.find_element(By.LINK_TEXT, "compensated").click()
    wait.until(lambda _: browser.find_elements(By.CSS_SELECTOR, "#sagas td a"))
    browser.find_element(By.CSS_SELECTOR, "#sagas td a").click()
    path = wait.until(lambda _: browser.find_element(By.ID, "saga-path"))
    outcomes = {
        box.get_attribute("data-step"): box.get_attribute("data-outcome")
        for box in path.find_elements(By.CSS_SELECTOR, "g.step")
    }
    assert outcomes == {
        "reserving": "compensated",
        "charging": "compensated",
        "confirming": None,  # not taken
        "end": None,
    }
    assert "compensated" in text_of(browser, "#saga p")
    return save_screenshot(browser, f"ops-page-sagas-{backend}")


async def _on_the_database(url: str, work: Callable[..., Any], *arguments: Any) -> Any:
    engine = create_engine(url)
    try:
        return await work(engine, *arguments)
    finally:
        await engine.dispose()


def test_the_settings_turn_the_pages_actions_on_only_with_a_token() -> None:
    # when
    read_only = Settings.from_environment({})
    steering = Settings.from_environment({"SHOP_OPS_ACTIONS": "1", "SHOP_OPS_TOKEN": TOKEN})
    # then
    assert (read_only.ops_actions, read_only.ops_token) == (False, None)
    assert (steering.ops_actions, steering.ops_token) == (True, TOKEN)
    assert TOKEN not in repr(steering)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        pytest.param(
            {"SHOP_OPS_ACTIONS": "1"},
            "SHOP_OPS_ACTIONS=1 turns the operations page's actions on, and they need a token:"
            " set SHOP_OPS_TOKEN too",
            id="actions-without-a-token",
        ),
        pytest.param(
            {"SHOP_OPS_ACTIONS": "maybe"},
            "SHOP_OPS_ACTIONS 'maybe' is neither on nor off: use 1 or 0",
            id="not-a-switch",
        ),
        pytest.param(
            {"SHOP_OPS_TOKEN": "hunter2"},
            "SHOP_OPS_TOKEN is 7 characters long: use at least 16 random ones",
            id="short-token",
        ),
    ],
)
def test_operations_settings_that_cannot_work_are_refused(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment(environment)
    assert str(refused.value).startswith(message)
    assert "hunter2" not in str(refused.value)
