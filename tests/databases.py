"""Test databases: one migrated template per run, cloned for each database a test needs.

POSTROOM_TEST_DATABASE picks the engine (sqlite or postgresql). On PostgreSQL a clone is
`CREATE DATABASE … TEMPLATE`, on SQLite a file copy; both are far faster than migrating again.
"""

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from postroom.db.migrate import upgrade

BACKEND = os.environ.get("POSTROOM_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "POSTROOM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_reachable() -> str | None:
    """None if PostgreSQL answers; otherwise why not."""
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return None


class DatabaseFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = uuid.uuid4().hex[:10]
        self.created: list[str] = []
        self.template_url = ""

    def _url(self, name: str) -> str:
        if BACKEND == "sqlite":
            return f"sqlite+aiosqlite:///{self.workdir / name}.db"
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create_template(self) -> None:
        name = f"postroom_test_{self.run}_template"
        if BACKEND == "postgresql":
            await self._admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
        self.template_url = self._url(name)
        # Alembic runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(upgrade, self.template_url)

    async def clone(self) -> str:
        name = f"postroom_test_{self.run}_{uuid.uuid4().hex[:8]}"
        if BACKEND == "postgresql":
            template = make_url(self.template_url).database
            await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.created.append(name)
        else:
            source = Path(str(make_url(self.template_url).database))
            shutil.copyfile(source, self.workdir / f"{name}.db")
        return self._url(name)

    async def empty(self) -> str:
        """A database with no schema at all (as before `postroom migrate`)."""
        name = f"postroom_test_{self.run}_{uuid.uuid4().hex[:8]}"
        if BACKEND == "postgresql":
            await self._admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
        return self._url(name)

    async def drop_all(self) -> None:
        if BACKEND != "postgresql":
            return
        # A few at once: one after another, the drops of a whole run take a quarter minute.
        slots = asyncio.Semaphore(4)

        async def drop(name: str) -> None:
            async with slots:
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        await asyncio.gather(*(drop(name) for name in self.created))
