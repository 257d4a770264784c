"""Alembic environment: async engine, one transaction, serialised across processes on PostgreSQL."""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, event, text

# Every model module, so that autogenerate sees the whole schema.
import postroom.auth.models
import postroom.blocklists.models
import postroom.credentials.models
import postroom.delivery.models
import postroom.events.models
import postroom.files.models
import postroom.idempotency.models
import postroom.messages.models
import postroom.senders.models
import postroom.webhooks.models  # noqa: F401
from postroom.db.base import Base
from postroom.db.engine import create_engine
from postroom.settings import Settings

# Any fixed number: the key of the advisory lock that keeps two starting processes from
# migrating the same PostgreSQL database at once.
MIGRATION_LOCK_KEY = 7_450_001


def _database_url() -> str:
    url = context.config.attributes.get("database_url")
    return str(url) if url else Settings().resolved_database_url


def _run(connection: Connection) -> None:
    dialect = connection.dialect.name

    def include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        # Trigram indexes exist on PostgreSQL only (see the models' ddl_if).
        return not (type_ == "index" and (name or "").endswith("_trgm") and dialect != "postgresql")

    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=dialect == "sqlite",
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
        if dialect == "sqlite":
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def _keys_not_enforced(dbapi_connection: Any, _record: Any) -> None:
    # A SQLite migration that drops a column rebuilds its table (batch mode: copy, drop, rename);
    # with foreign keys enforced, dropping the old table would first delete, by ON DELETE
    # CASCADE, every row referring to it (a message's attempts, its queue row, its files).
    # The pragma is a no-op inside a transaction, hence at connect; the keys are checked at the
    # end instead (_run).
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


async def _run_online() -> None:
    engine = create_engine(_database_url(), pool_size=1)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _keys_not_enforced)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
