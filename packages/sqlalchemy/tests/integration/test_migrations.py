from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.outbox import partition_hash
from cqrs_ddd_persistence_sqlalchemy import (
    SchemaNotReadyError,
    SQLAlchemyEventStore,
    create_engine,
    downgrade_schema,
    head_revision,
    schema_revision,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.migrate import VERSION_TABLE
from cqrs_ddd_persistence_sqlalchemy.schema import metadata, outbox

pytest_plugins = ["sqlalchemy_fixtures"]


async def test_the_migrated_schema_is_exactly_the_package_metadata(engine: AsyncEngine) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_upgrading_twice_is_harmless_and_records_the_head_revision(
    engine: AsyncEngine,
) -> None:
    await upgrade_schema(engine)
    assert await schema_revision(engine) == head_revision()


async def test_nothing_is_created_until_upgrade_schema_is_called(database_url: str) -> None:
    # given: a fresh database and a store on it, without migrations
    engine = create_engine(database_url)
    try:
        store = SQLAlchemyEventStore(engine)
        assert await schema_revision(engine) is None
        # when / then: the store says what to do instead of a driver error
        with pytest.raises(SchemaNotReadyError, match="upgrade_schema"):
            await store.current_position()
    finally:
        await engine.dispose()


async def test_downgrading_removes_every_table_of_the_package(engine: AsyncEngine) -> None:
    await downgrade_schema(engine)

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with engine.connect() as connection:
        remaining = await connection.run_sync(tables)
    assert not remaining & set(metadata.tables)
    assert await schema_revision(engine) is None


async def test_upgrading_to_outbox_partitions_hashes_the_rows_still_unpublished(
    engine: AsyncEngine,
) -> None:
    # given: an outbox at revision 0008 (no partition hash) with one row sent, one not
    await downgrade_schema(engine, "0008")
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        for number, published_at in ((1, now), (2, None)):
            await connection.execute(
                text(
                    "INSERT INTO cqrs_outbox (message_id, topic, partition_key, payload,"
                    " created_at, published_at, attempts)"
                    " VALUES (:message_id, 'orders', :key, '{}', :created_at, :published_at, 0)"
                ),
                {
                    "message_id": uuid4().hex if engine.dialect.name == "sqlite" else uuid4(),
                    "key": f"order-{number}",
                    "created_at": now,
                    "published_at": published_at,
                },
            )
    # when
    await upgrade_schema(engine)
    # then: the row a relay will read carries its key's hash (partitioned relays pick it)
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.partition_key, outbox.c.partition_hash))
        hashes = dict(rows.all())
    assert hashes == {"order-1": 0, "order-2": partition_hash("order-2")}
    assert hashes["order-2"] != 0


async def test_the_outbox_indexes_leave_out_what_they_should(engine: AsyncEngine) -> None:
    # compare_metadata does not compare partial indexes' conditions: read them back
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            found = await connection.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'cqrs_outbox'")
            )
        else:
            found = await connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'cqrs_outbox'")
            )
        definitions = {name: (sql or "").lower() for name, sql in found}
    pending = definitions["ix_cqrs_outbox_pending"]
    assert "published_at is null" in pending
    assert "failed_at is null" in pending
    failed = definitions["ix_cqrs_outbox_failed"]
    assert "failed_at is not null" in failed
    assert "partition_key" in failed
