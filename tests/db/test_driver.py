"""db/driver.py: asyncpg's own statements inside a session's transaction or on a connection of
their own, and rows written the way the ORM's bulk INSERT writes them."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import registry

from postroom.auth import service as auth
from postroom.auth.models import Organization
from postroom.core.ids import new_id
from postroom.db.driver import (
    ConnectionReplaced,
    Driver,
    OwnConnections,
    Part,
    RowInsert,
    driver,
)
from postroom.db.engine import create_engine
from postroom.messages.models import EmailMessage
from tests.databases import BACKEND
from tests.polling import eventually

postgresql_only = pytest.mark.skipif(BACKEND != "postgresql", reason="asyncpg is PostgreSQL's")
_INSERT = RowInsert(sa_inspect(EmailMessage))


def message_values(organization_id: str, **overrides: Any) -> dict[str, Any]:
    now = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        attribute.key: None for attribute in sa_inspect(EmailMessage).column_attrs
    }
    values.update(
        id=new_id("mail_msg_"),
        organization_id=organization_id,
        status="draft",
        from_address="a@example.com",
        to_addresses=["b@example.org"],
        cc_addresses=[],
        bcc_addresses=[],
        subject="s",
        text="t",
        html="<p>h</p>",
        attachments=[],
        created_at=now,
        updated_at=now,
        search_text="s a@example.com b@example.org",
    )
    values.update(overrides)
    return values


async def count(session: AsyncSession, message_id: str) -> int:
    found = await session.scalar(
        select(func.count()).select_from(EmailMessage).where(EmailMessage.id == message_id)
    )
    return found or 0


async def write(prepared: Driver, values: dict[str, Any]) -> None:
    await prepared.execute(_INSERT.sql, _INSERT.args(values, prepared.dialect))


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's case")
async def test_on_sqlite_there_is_no_driver(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        assert await driver(session) is None


async def backend_pid(prepared: Driver) -> int:
    row = await prepared.fetchrow("SELECT pg_backend_pid()", ())
    assert row is not None
    return int(row[0])


async def terminate(database_url: str, pid: int) -> None:
    admin = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


@postgresql_only
class TestDriver:
    async def test_its_statements_roll_back_with_the_session(
        self, sessionmaker: async_sessionmaker[AsyncSession], organization: auth.NewOrganization
    ) -> None:
        values = message_values(organization.organization_id)
        async with sessionmaker() as session:
            prepared = await driver(session)
            assert prepared is not None
            await write(prepared, values)
            assert await count(session, values["id"]) == 1  # the same transaction sees it
            await session.rollback()
            assert await count(session, values["id"]) == 0

    async def test_its_statements_commit_with_the_session(
        self, sessionmaker: async_sessionmaker[AsyncSession], organization: auth.NewOrganization
    ) -> None:
        values = message_values(organization.organization_id)
        async with sessionmaker() as session:
            prepared = await driver(session)
            assert prepared is not None
            await write(prepared, values)
            await session.commit()
        async with sessionmaker() as session:
            assert await count(session, values["id"]) == 1

    async def test_it_is_kept_for_the_transaction_and_made_again_for_the_next(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session:
            first = await driver(session)
            assert first is not None
            assert await driver(session) is first
            await session.commit()
            second = await driver(session)
            assert second is not None and second is not first
            # The next transaction is begun too: what it writes is undone by its rollback.
            await second.execute("CREATE TEMPORARY TABLE t (n int)", ())
            await session.rollback()
            assert await session.scalar(text("SELECT to_regclass('pg_temp.t') IS NULL"))

    async def test_the_sessions_pending_changes_are_written_first(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        organization = Organization(id=new_id("org_"), name="pending", created_at=datetime.now(UTC))
        async with sessionmaker() as session:
            session.add(organization)
            prepared = await driver(session)
            assert prepared is not None
            # The message's foreign key needs the organization's row, not yet flushed above.
            await write(prepared, message_values(organization.id))
            await session.rollback()

    async def test_a_connection_found_closed_is_a_lost_connection_to_sqlalchemy(
        self, database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session:
            prepared = await driver(session)
            assert prepared is not None
            pid = await backend_pid(prepared)
            await terminate(database_url, pid)
            with pytest.raises(DBAPIError) as raised:
                await prepared.fetchrow("SELECT 1", ())
            assert raised.value.connection_invalidated
        async with sessionmaker() as session:  # and the pool serves a working one again
            assert await session.scalar(text("SELECT 1")) == 1


@postgresql_only
class TestOwnConnections:
    """The group commit's own connections, outside SQLAlchemy's pool: one statement each."""

    @pytest.fixture
    async def own(self, database_url: str) -> AsyncIterator[OwnConnections]:
        engine = create_engine(database_url)
        connections = OwnConnections(engine)
        yield connections
        await connections.aclose()
        await engine.dispose()

    async def test_parts_run_as_one_statement_that_stores_all_or_nothing(
        self,
        own: OwnConnections,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: auth.NewOrganization,
    ) -> None:
        first, second = (message_values(organization.organization_id) for _ in range(2))
        twice = message_values(organization.organization_id)
        async with own.connection() as prepared:

            def parts(*by_unnest: dict[str, Any], then: dict[str, Any]) -> list[Part]:
                # Each part numbers its own placeholders from $1.
                return [
                    _INSERT.unnest(by_unnest, prepared.dialect),
                    Part(_INSERT.sql, _INSERT.args(then, prepared.dialect)),
                ]

            await prepared.execute_together(parts(first, then=second))
            with pytest.raises(asyncpg.UniqueViolationError):
                await prepared.execute_together(parts(twice, then=first))
        async with sessionmaker() as session:
            assert [await count(session, v["id"]) for v in (first, second, twice)] == [1, 1, 0]

    async def test_one_connection_serves_user_after_user(self, own: OwnConnections) -> None:
        pids = set()
        for _ in range(3):
            async with own.connection() as prepared:
                pids.add(await backend_pid(prepared))
        assert len(pids) == 1

    async def test_a_connection_lost_in_use_is_dropped_and_the_next_user_gets_a_new_one(
        self,
        own: OwnConnections,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: auth.NewOrganization,
    ) -> None:
        lost = message_values(organization.organization_id)

        async def write_after_the_server_ends_it() -> None:
            async with own.connection() as prepared:
                pid = await backend_pid(prepared)
                await terminate(database_url, pid)
                await write(prepared, lost)
            raise AssertionError("the write on an ended connection succeeded")

        with pytest.raises(ConnectionReplaced):
            await write_after_the_server_ends_it()
        stored = message_values(organization.organization_id)
        async with own.connection() as prepared:
            await write(prepared, stored)
        async with sessionmaker() as session:
            assert await count(session, lost["id"]) == 0
            assert await count(session, stored["id"]) == 1

    async def test_a_connection_the_server_closed_while_idle_is_not_used(
        self,
        own: OwnConnections,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: auth.NewOrganization,
    ) -> None:
        """As after a restart: the next user is served on a new connection, not refused."""
        async with own.connection() as prepared:
            pid = await backend_pid(prepared)
            idle = prepared
        await terminate(database_url, pid)

        async def noticed() -> bool:  # asyncpg reads the server's goodbye as it comes
            return idle.is_closed()

        await eventually(noticed, timeout=30, what="asyncpg to see the connection closed")
        stored = message_values(organization.organization_id)
        async with own.connection() as prepared:
            await write(prepared, stored)
            assert await backend_pid(prepared) != pid
        async with sessionmaker() as session:
            assert await count(session, stored["id"]) == 1


@postgresql_only
class TestRowInsert:
    async def test_a_row_is_stored_as_the_orm_bulk_insert_stores_it(
        self, sessionmaker: async_sessionmaker[AsyncSession], organization: auth.NewOrganization
    ) -> None:
        # None where it may be: JSON stores it as JSON null, any other column NULL.
        overrides = {"metadata_": None, "credential_hash": None}
        by_orm = message_values(organization.organization_id, **overrides)
        by_driver = message_values(organization.organization_id, **overrides)
        by_unnest = message_values(organization.organization_id, **overrides)
        async with sessionmaker() as session:
            await session.execute(insert(EmailMessage), [by_orm])
            prepared = await driver(session)
            assert prepared is not None
            await write(prepared, by_driver)
            await prepared.execute_together([_INSERT.unnest([by_unnest], prepared.dialect)])
            await session.commit()
        table = EmailMessage.__table__
        columns = [c for c in table.c if c.name != "id"]
        rows = {}
        async with sessionmaker() as session:
            for values in (by_orm, by_driver, by_unnest):
                stored = await session.execute(
                    select(*columns, func.jsonb_typeof(table.c.metadata)).where(
                        table.c.id == values["id"]
                    )
                )
                rows[values["id"]] = tuple(stored.one())
        assert rows[by_orm["id"]] == rows[by_driver["id"]] == rows[by_unnest["id"]]
        assert rows[by_orm["id"]][-1] == "null"


_DEFAULTS = Table(
    "t",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("constant", Integer, default=7),
    Column("server_side", Integer, server_default="0"),
)
_DIALECT = make_url("postgresql://").get_dialect()()


def test_a_none_for_a_column_with_a_constant_default_is_that_default() -> None:
    class Row:
        pass

    mapper = registry().map_imperatively(Row, _DEFAULTS, exclude_properties=["server_side"])
    assert RowInsert(mapper).args({"id": 1, "constant": None}, _DIALECT) == [1, 7]


def test_a_column_with_only_a_server_side_default_is_refused() -> None:
    class Row:
        pass

    mapper = registry().map_imperatively(Row, _DEFAULTS)
    with pytest.raises(ValueError, match="constant default"):
        RowInsert(mapper).args({"id": 1, "constant": 1, "server_side": None}, _DIALECT)
