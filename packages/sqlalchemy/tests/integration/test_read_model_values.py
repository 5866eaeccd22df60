"""A read model takes the same values on SQLite and PostgreSQL, and refuses the same.

SQLite stores a 300-character string in ``String(64)`` and a 40-bit integer in
``Integer``; PostgreSQL refuses both, and rounds a third decimal into
``Numeric(12, 2)``. ``SQLAlchemyReadModelStore`` checks values against their
columns first, so a projection behaves the same on either database.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import ValidationError
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyReadModelStore

pytest_plugins = ["sqlalchemy_fixtures"]

metadata = MetaData()
ledger = Table(
    "value_ledger",
    metadata,
    Column("entry_id", String(16), primary_key=True),
    Column("small", SmallInteger, nullable=True),
    Column("count", Integer, nullable=True),
    Column("big", BigInteger, nullable=True),
    Column("amount", Numeric(12, 2), nullable=True),
    Column("note", Text, nullable=True),
    Column("extra", JSON, nullable=True),
)


@pytest_asyncio.fixture
async def entries(engine: AsyncEngine) -> SQLAlchemyReadModelStore:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return SQLAlchemyReadModelStore(ledger, engine)


REFUSED = [
    ({"entry_id": "x" * 17}, "entry_id", "17 characters long"),
    ({"small": 2**15}, "small", "16-bit"),
    ({"count": 2**31}, "count", "32-bit"),
    ({"count": -(2**31) - 1}, "count", "32-bit"),
    ({"big": 2**63}, "big", "64-bit"),
    ({"amount": Decimal("0.005")}, "amount", "3 decimal places"),
    ({"amount": Decimal("12345678901")}, "amount", "11 digits before the point"),
    ({"amount": Decimal("NaN")}, "amount", "cannot hold"),
    ({"note": "nul \x00 inside"}, "note", "NUL"),
    ({"note": "lone \ud800"}, "note", "surrogate"),
    ({"extra": {"ratio": float("inf")}}, "extra", "JSON cannot represent"),
]


@pytest.mark.parametrize(
    ("changes", "column", "reason"), REFUSED, ids=[case[1] + "-" + case[2] for case in REFUSED]
)
async def test_a_value_that_does_not_fit_its_column_is_refused_before_any_sql(
    entries: SQLAlchemyReadModelStore, changes: dict[str, Any], column: str, reason: str
) -> None:
    # given
    row = {"entry_id": "e-1", **changes}
    async with entries.engine.begin() as connection:
        await entries.upsert(connection, {"entry_id": "e-1", "count": 1})
        # when / then: an upsert and an update are refused alike, naming the column
        for write in (entries.upsert(connection, row), entries.update(connection, "e-1", changes)):
            with pytest.raises(ValidationError) as refused:
                await write
            assert refused.value.fields == (column,)
            assert reason in str(refused.value)
            assert "value_ledger" in str(refused.value)
        # and nothing was changed
        assert await entries.get(connection, "e-1") == {
            "entry_id": "e-1",
            "small": None,
            "count": 1,
            "big": None,
            "amount": None,
            "note": None,
            "extra": None,
        }


async def test_values_at_the_edge_of_their_columns_are_kept_exactly(
    entries: SQLAlchemyReadModelStore,
) -> None:
    # given
    row = {
        "entry_id": "x" * 16,
        "small": -(2**15),
        "count": 2**31 - 1,
        "big": -(2**63),
        "amount": Decimal("9999999999.99"),
        "note": "ünïcode 😀 " * 100,
        "extra": {"nested": [1, 2.5, None]},
    }
    async with entries.engine.begin() as connection:
        # when
        await entries.upsert(connection, row)
        # then
        assert await entries.get(connection, "x" * 16) == row


async def test_an_update_naming_an_unknown_column_is_refused_before_any_sql(
    entries: SQLAlchemyReadModelStore,
) -> None:
    async with entries.engine.begin() as connection:
        await entries.upsert(connection, {"entry_id": "e-1"})
        with pytest.raises(ValidationError) as refused:
            await entries.update(connection, "e-1", {"colour": "red"})
    assert refused.value.fields == ("colour",)
