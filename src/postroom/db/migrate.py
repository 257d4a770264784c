"""Runs the Alembic migrations shipped inside the package, so `postroom migrate` works anywhere."""

import asyncio

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from postroom.db.engine import create_engine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "postroom:migrations")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> int:
    """Bring the schema to `revision`: how many migrations that applied. Call from synchronous
    code (it runs its own loop)."""
    config = alembic_config(database_url)
    before = asyncio.run(_current_revision(database_url))
    pending = ScriptDirectory.from_config(config).iterate_revisions(revision, before)
    count = sum(1 for script in pending if script.revision != before)
    command.upgrade(config, revision)
    return count


async def _current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url, pool_size=1)
    try:
        return await _revision_of(engine)
    finally:
        await engine.dispose()


async def _revision_of(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    return await _revision_of(engine) == head
