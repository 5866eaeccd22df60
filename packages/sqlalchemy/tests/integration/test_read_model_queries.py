"""SQLAlchemyReadModelStore: specification queries in SQL answer as they do in memory.

Runs on SQLite and PostgreSQL against a read-model table the test owns
(created with ``metadata.create_all``, as an application would create its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import QueryOptions, SpecificationBuilder
from cqrs_ddd_core import ValidationError
from cqrs_ddd_core.domain.specification import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    OrSpecification,
    PredicateSpecification,
    Specification,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyReadModelStore,
    UnsupportedSpecificationError,
)

pytest_plugins = ["sqlalchemy_fixtures"]

metadata = MetaData()
orders = Table(
    "order_summaries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", String(40)),
    Column("status", String(20)),
    Column("total", Integer),
    Column("created_at", Integer),
)
items = Table(
    "random_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("number", Integer),
    Column("label", String),
    Column("flag", Boolean),
)
never_created = Table("never_created", MetaData(), Column("id", Integer, primary_key=True))

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "customer_id": "cust_123", "status": "pending", "total": 150, "created_at": 3},
    {"id": 2, "customer_id": "cust_123", "status": "shipped", "total": 300, "created_at": 5},
    {"id": 3, "customer_id": "cust_123", "status": "confirmed", "total": 90, "created_at": 7},
    {"id": 4, "customer_id": "cust_999", "status": "pending", "total": 500, "created_at": 9},
    {"id": 5, "customer_id": "cust_123", "status": "confirmed", "total": 120, "created_at": 11},
]


@pytest_asyncio.fixture
async def read_models(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """``engine`` with the test's read-model tables created."""
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)


async def replace_rows(engine: AsyncEngine, table: Table, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(delete(table))
        if rows:
            await connection.execute(insert(table), rows)


async def test_the_spec_quick_example_runs_against_a_table(read_models: AsyncEngine) -> None:
    # given
    await replace_rows(read_models, orders, ORDERS)
    order_projection = SQLAlchemyReadModelStore(orders, read_models)
    spec = (
        SpecificationBuilder()
        .where("customer_id", "==", "cust_123")
        .where("status", "in", ["pending", "confirmed"])
        .where("total", ">", 100)
    )
    options = (
        QueryOptions()
        .with_specification(spec)
        .with_ordering("created_at", desc=True)
        .with_pagination(limit=20, offset=0)
    )
    # when
    found = await order_projection.query(options)
    # then
    assert found == [ORDERS[4], ORDERS[0]]
    assert await order_projection.count(spec) == 2
    assert await order_projection.count() == 5


async def test_an_unknown_field_is_rejected_before_any_sql_runs(engine: AsyncEngine) -> None:
    # given: a table that does not exist, so any SQL would fail with SchemaNotReadyError
    store = SQLAlchemyReadModelStore(never_created, engine)
    spec = SpecificationBuilder().where("colour", "==", "red")
    # when / then
    with pytest.raises(ValidationError, match="colour"):
        await store.query(QueryOptions().with_specification(spec))
    with pytest.raises(ValidationError, match="colour"):
        await store.count(spec)
    with pytest.raises(ValidationError, match="colour"):
        await store.query(QueryOptions().with_ordering("colour"))


async def test_a_specification_without_translation_is_rejected_before_any_sql_runs(
    engine: AsyncEngine,
) -> None:
    # given
    store = SQLAlchemyReadModelStore(never_created, engine)
    spec = PredicateSpecification(lambda row: True, name="anything")
    # when / then
    with pytest.raises(UnsupportedSpecificationError, match="PredicateSpecification"):
        await store.count(spec)


async def test_contains_on_a_non_text_column_is_rejected(read_models: AsyncEngine) -> None:
    # given
    store = SQLAlchemyReadModelStore(items, read_models)
    # when / then
    with pytest.raises(ValidationError, match="number"):
        await store.count(SpecificationBuilder().where("number", "contains", 1))


NUMBERS = st.none() | st.integers(min_value=-3, max_value=3)
LABELS = st.none() | st.text(alphabet="aAbB%_\\ ", max_size=3)
FLAGS = st.none() | st.booleans()
VALUES = {"id": st.integers(min_value=0, max_value=8), "number": NUMBERS, "label": LABELS}
VALUES["flag"] = FLAGS
COMPARISONS = ["==", "!=", ">", ">=", "<", "<="]


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    identities = draw(st.lists(st.integers(min_value=1, max_value=8), unique=True, max_size=8))
    return [
        {"id": identity, "number": draw(NUMBERS), "label": draw(LABELS), "flag": draw(FLAGS)}
        for identity in identities
    ]


@st.composite
def field_specifications(draw: st.DrawFn) -> Specification[Any]:
    field = draw(st.sampled_from(sorted(VALUES)))
    operators = [*COMPARISONS, "in", "not_in", "is_null"]
    if field == "label":
        operators += ["contains", "startswith"]
    operator = draw(st.sampled_from(operators))
    if operator in ("in", "not_in"):
        value: Any = draw(st.lists(VALUES[field], max_size=3))
    elif operator == "is_null":
        value = draw(st.booleans())
    elif operator in ("contains", "startswith"):
        value = draw(st.text(alphabet="aAbB%_\\ ", max_size=2))
    else:
        value = draw(VALUES[field])
    return FieldSpecification(field, operator, value)


def specifications(depth: int = 3) -> st.SearchStrategy[Specification[Any]]:
    if depth == 0:
        return field_specifications()
    children = specifications(depth - 1)
    return st.one_of(
        field_specifications(),
        st.lists(children, max_size=3).map(lambda parts: AndSpecification(*parts)),
        st.lists(children, max_size=3).map(lambda parts: OrSpecification(*parts)),
        children.map(NotSpecification),
        children.map(lambda part: SpecificationBuilder().and_(part)),
    )


@st.composite
def query_options(draw: st.DrawFn) -> QueryOptions:
    options = QueryOptions()
    if draw(st.booleans()):
        options = options.with_specification(draw(specifications()))
    for field in draw(st.lists(st.sampled_from(["number", "label", "flag"]), max_size=2)):
        options = options.with_ordering(field, desc=draw(st.booleans()))
    # the primary key last makes the order total, so both stores agree on ties
    options = options.with_ordering("id", desc=draw(st.booleans()))
    limit = draw(st.none() | st.integers(min_value=0, max_value=5))
    return options.with_pagination(limit=limit, offset=draw(st.integers(0, 4)))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=rows(), options=query_options())
async def test_sql_queries_select_the_same_rows_in_the_same_order_as_memory(
    read_models: AsyncEngine, data: list[dict[str, Any]], options: QueryOptions
) -> None:
    # given
    await replace_rows(read_models, items, data)
    store = SQLAlchemyReadModelStore(items, read_models)
    # when
    found = await store.query(options)
    counted = await store.count(options.specification)
    # then
    assert found == options.apply(data)
    expected_count = len(
        data if options.specification is None else options.specification.filter(data)
    )
    assert counted == expected_count
