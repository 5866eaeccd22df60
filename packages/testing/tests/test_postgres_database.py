from __future__ import annotations

import asyncpg
import pytest

from cqrs_ddd_testing import POSTGRES, PostgresDatabase, create_database, drop_database


async def _public_tables(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    finally:
        await connection.close()
    return [row["tablename"] for row in rows]


async def _database_exists(dsn: str, name: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        found: int | None = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", name
        )
    finally:
        await connection.close()
    return found == 1


async def test_a_new_database_has_no_tables(postgres_database: PostgresDatabase) -> None:
    # given / when
    tables = await _public_tables(postgres_database.dsn)
    # then
    assert tables == []


@pytest.mark.parametrize("table", ["orders", "customers"])
async def test_each_test_sees_only_the_tables_it_created(
    postgres_database: PostgresDatabase, table: str
) -> None:
    # given
    connection = await asyncpg.connect(postgres_database.dsn)
    try:
        # when
        await connection.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    finally:
        await connection.close()
    # then
    assert await _public_tables(postgres_database.dsn) == [table]


async def test_both_urls_lead_to_the_named_database(postgres_database: PostgresDatabase) -> None:
    # given
    name = postgres_database.name
    # when
    connection = await asyncpg.connect(postgres_database.dsn)
    try:
        current = await connection.fetchval("SELECT current_database()")
    finally:
        await connection.close()
    # then
    assert current == name
    assert postgres_database.dsn.startswith("postgresql://")
    assert postgres_database.sqlalchemy_url.startswith("postgresql+asyncpg://")
    assert postgres_database.sqlalchemy_url.endswith(f"/{name}")


async def test_dropping_a_database_removes_it_even_while_a_client_is_connected(
    postgres_database: PostgresDatabase,
) -> None:
    # given
    admin_url = POSTGRES.url()
    database = await create_database(admin_url)
    client = await asyncpg.connect(database.dsn)
    try:
        # when
        await drop_database(admin_url, database.name)
    finally:
        client.terminate()
    # then
    assert not await _database_exists(postgres_database.dsn, database.name)


async def test_dropping_a_database_that_is_already_gone_succeeds(
    postgres_database: PostgresDatabase,
) -> None:
    # given
    admin_url = POSTGRES.url()
    database = await create_database(admin_url)
    await drop_database(admin_url, database.name)
    # when
    await drop_database(admin_url, database.name)
    # then
    assert not await _database_exists(postgres_database.dsn, database.name)


async def test_dropping_a_database_the_plugin_did_not_make_is_refused() -> None:
    # given
    admin_url = "postgresql://postgres@127.0.0.1:1/postgres"
    # when / then
    with pytest.raises(ValueError, match="refusing to drop database 'postgres'"):
        await drop_database(admin_url, "postgres")
