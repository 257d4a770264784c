"""Runs the Alembic migrations shipped inside the package, so `postroom migrate` works anywhere."""

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "postroom:migrations")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; call from synchronous code (it runs its own loop)."""
    command.upgrade(alembic_config(database_url), revision)


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
    return current == head
