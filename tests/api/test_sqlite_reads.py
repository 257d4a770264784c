"""On SQLite, a request that only reads takes no write lock (db/engine.py `reading`): it is
answered while another connection holds the lock, where it used to wait for it."""

import sqlite3

import httpx
import pytest
from sqlalchemy.engine import make_url

from postroom.db.engine import create_engine, create_sessionmaker
from tests.api.conftest import ApiFactory
from tests.databases import BACKEND, DatabaseFactory
from tests.factories import make_org

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's write lock")


async def test_a_read_is_answered_while_a_writer_holds_the_lock(
    api_factory: ApiFactory, databases: DatabaseFactory
) -> None:
    url = await databases.clone()
    engine = create_engine(url)
    try:
        organization = await make_org(create_sessionmaker(engine))
    finally:
        await engine.dispose()
    writer = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    try:
        with api_factory(url) as api:
            async with httpx.AsyncClient(
                base_url=api, headers={"REB-APIKEY": organization.api_key}, timeout=120
            ) as client:
                assert (await client.get("/email-messages")).status_code == 200  # key known
                writer.execute("BEGIN IMMEDIATE")
                # Held until the answer comes: a read that waited for the lock would wait out
                # busy_timeout (30 s) and fail.
                listed = await client.get("/email-messages")
                assert (listed.status_code, listed.json()) == (200, [])
                writer.execute("ROLLBACK")
    finally:
        writer.close()
