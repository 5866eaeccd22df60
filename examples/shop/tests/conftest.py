"""Fixtures of the shop's tests: a database on each backend, and the service on it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from shop_testing import Service, run_service

from cqrs_ddd_testing import PostgresDatabase


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.sqlalchemy_url


@pytest_asyncio.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    """The shop on each backend in turn, over HTTP (ASGI), with a customer and two products."""
    async for running in run_service(database_url):
        await running.json("POST", "/customers", 201, json={"customer_id": "ada", "name": "Ada"})
        for sku, price, stock in [("tea", "4.50", 10), ("mug", "12.00", 5)]:
            product = {"sku": sku, "name": sku.title(), "price": price, "stock": stock}
            await running.json("POST", "/products", 201, json=product)
        yield running
