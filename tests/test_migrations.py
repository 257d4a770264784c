"""The Alembic migrations build exactly the schema the models describe, and can be undone."""

import asyncio
import importlib
import pkgutil
import warnings
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, insert, inspect, select, text

import postroom
from postroom.auth.models import Organization
from postroom.core.ids import new_id
from postroom.db.base import Base
from postroom.db.engine import create_engine
from postroom.db.migrate import alembic_config, is_current, upgrade
from postroom.delivery.models import QueuedMessage
from postroom.messages.models import EmailMessage, MessageCount
from tests import databases as test_databases


def import_every_model_module() -> None:
    """Every `postroom.<domain>.models`, so that a table without a migration is seen too."""
    for module in pkgutil.walk_packages(postroom.__path__, "postroom."):
        if module.name.endswith(".models"):
            importlib.import_module(module.name)


def schema_differences(connection: Connection) -> list[Any]:
    dialect = connection.dialect.name

    def include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        # As migrations/env.py: trigram indexes exist on PostgreSQL only (the models' ddl_if).
        return not (type_ == "index" and (name or "").endswith("_trgm") and dialect != "postgresql")

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object}
    )
    with warnings.catch_warnings():
        # SQLite cannot reflect an index on an expression (the case-insensitive unique index of
        # email_delivery_settings), so SQLAlchemy and Alembic say they skip comparing it.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        differences: list[Any] = compare_metadata(context, Base.metadata)
    return differences


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def differences_in(url: str) -> list[Any]:
    import_every_model_module()
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(schema_differences)
    finally:
        await engine.dispose()


class TestMigrations:
    async def test_migrated_schema_matches_the_models(
        self, databases: test_databases.DatabaseFactory
    ) -> None:
        assert await differences_in(await databases.clone()) == []

    async def test_downgrade_to_base_then_upgrade_to_head(
        self, databases: test_databases.DatabaseFactory
    ) -> None:
        url = await databases.clone()
        # Alembic's env runs its own event loop, so each command gets a thread.
        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                assert await connection.run_sync(table_names) <= {"alembic_version"}
            assert not await is_current(engine)
            await asyncio.to_thread(upgrade, url)
            assert await is_current(engine)
            async with engine.connect() as connection:
                assert {"organizations", "api_keys", "email_messages"} <= await connection.run_sync(
                    table_names
                )
        finally:
            await engine.dispose()
        assert await differences_in(url) == []

    async def test_upgrade_at_head_is_a_no_op(
        self, databases: test_databases.DatabaseFactory
    ) -> None:
        url = await databases.clone()
        await asyncio.to_thread(upgrade, url)
        assert await differences_in(url) == []


# The revision before the kept message counts (email_message_counts) existed.
BEFORE_COUNTS = "d4e5f6a7b8c9"


def message_row(organization_id: str, status: str) -> dict[str, Any]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    return {
        "id": new_id("mail_msg_"),
        "organization_id": organization_id,
        "status": status,
        "from_address": "sender@example.com",
        "to_addresses": ["to@example.com"],
        "cc_addresses": [],
        "bcc_addresses": [],
        "subject": "s",
        "text": "t",
        "html": "h",
        "attachments": [],
        "created_at": now,
        "updated_at": now,
        "search_text": "",
    }


class TestKeptCountsMigration:
    async def test_upgrade_counts_the_messages_already_stored(
        self, databases: test_databases.DatabaseFactory
    ) -> None:
        url = await databases.empty()
        await asyncio.to_thread(upgrade, url, BEFORE_COUNTS)
        stored = {("org_a", "sent"): 3, ("org_a", "draft"): 1, ("org_b", "failed"): 2}
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as connection:
                now = datetime.now(UTC)
                for org in ("org_a", "org_b", "org_c"):
                    await connection.execute(
                        insert(Organization).values(id=org, name=org, created_at=now)
                    )
                rows = [message_row(o, s) for (o, s), n in stored.items() for _ in range(n)]
                await connection.execute(insert(EmailMessage), rows)
            await asyncio.to_thread(upgrade, url)
            async with engine.connect() as connection:
                counted = await connection.execute(
                    select(
                        MessageCount.organization_id,
                        MessageCount.status,
                        func.sum(MessageCount.count),
                    ).group_by(MessageCount.organization_id, MessageCount.status)
                )
                assert {(o, s): int(n) for o, s, n in counted} == stored
        finally:
            await engine.dispose()


BEFORE_QUEUE, QUEUE = "a1b2c3d4e5f6", "d4e5f6a7b8c9"
_OLD_MESSAGE = text(
    "INSERT INTO email_messages (id, organization_id, status, from_address, to_addresses, "
    "cc_addresses, bcc_addresses, subject, text, html, attachments, credential_hash, "
    "initiated_at, created_at, updated_at, search_text, attempt_count, next_attempt_at, "
    "lease_token) VALUES (:id, 'org_q', :status, 'a@example.com', '[]', '[]', '[]', 's', 't', "
    "'h', '[]', :credential, :at, :at, :at, '', :attempts, :next, :lease)"
)


class TestQueueMigration:
    async def test_queued_messages_move_to_the_queue_with_their_lease_and_back(
        self, databases: test_databases.DatabaseFactory
    ) -> None:
        url = await databases.empty()
        await asyncio.to_thread(upgrade, url, BEFORE_QUEUE)
        at = datetime(2026, 11, 1, tzinfo=UTC)
        lease_end = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
        old = {
            "due": ("outbox", None, 0, at, None),
            "leased": ("outbox", "cred_1", 2, lease_end, "lease_1"),
            "done": ("sent", None, 1, None, None),
        }
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(Organization).values(id="org_q", name="q", created_at=at)
                )
                for id_, (status, credential, attempts, next_at, lease) in old.items():
                    # As SQLite stores UTCDateTime: naive UTC text.
                    next_value = next_at.replace(tzinfo=None) if next_at else None
                    await connection.execute(
                        _OLD_MESSAGE,
                        {
                            "id": id_,
                            "status": status,
                            "credential": credential,
                            "at": at.replace(tzinfo=None),
                            "attempts": attempts,
                            "next": next_value,
                            "lease": lease,
                        },
                    )
                # A row referring to a message: rebuilding email_messages must keep it.
                await connection.execute(
                    text(
                        "INSERT INTO delivery_attempts (id, message_id, number, transport, worker, "
                        "started_at) VALUES ('att_1', 'done', 1, 'smtp', 'w', :at)"
                    ),
                    {"at": at.replace(tzinfo=None)},
                )
            await asyncio.to_thread(upgrade, url, QUEUE)
            async with engine.connect() as connection:
                attempts = await connection.scalar(text("SELECT count(*) FROM delivery_attempts"))
                assert attempts == 1
                rows = {
                    row.message_id: row
                    for row in await connection.execute(select(QueuedMessage.__table__))
                }
            assert set(rows) == {"due", "leased"}
            assert rows["due"].delivery_key == "org_q "
            assert (rows["due"].attempt_count, rows["due"].lease_token) == (0, None)
            assert rows["leased"].delivery_key == "org_q cred_1"
            assert (rows["leased"].attempt_count, rows["leased"].lease_token) == (2, "lease_1")
            assert rows["leased"].leased_until is not None
            assert rows["leased"].leased_until.replace(tzinfo=None) == lease_end.replace(
                tzinfo=None
            )

            await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE_QUEUE)
            async with engine.connect() as connection:
                back = {
                    row[0]: tuple(row[1:])
                    for row in await connection.execute(
                        text("SELECT id, attempt_count, lease_token FROM email_messages")
                    )
                }
            assert back == {"due": (0, None), "leased": (2, "lease_1"), "done": (0, None)}
        finally:
            await engine.dispose()
