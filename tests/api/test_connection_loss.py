"""Connections that PostgreSQL drops (a restart, a failover, an administrator) are replaced by
the API by itself: no ping before each use, a 503 for a request whose connection turned out
dead (nothing stored), and every request after that served again, without a restart of postroom.
The connections are dropped with pg_terminate_backend, which is what a restart does to them,
without stopping the server every other test shares."""

import asyncio
from collections import Counter

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from postroom.db.engine import create_engine, create_sessionmaker
from postroom.messages.models import EmailMessage
from tests.api.conftest import ApiFactory
from tests.databases import BACKEND, DatabaseFactory
from tests.factories import make_org, message_body

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL drops connections")


async def drop_connections(url: str) -> int:
    """Ends every session on the database of `url` (but this one): how many there were."""
    database = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        ended = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(ended)
    finally:
        await connection.close()


async def test_dropped_connections_under_load_are_replaced_without_a_restart(
    api_factory: ApiFactory, databases: DatabaseFactory
) -> None:
    url = await databases.clone()
    engine = create_engine(url, pool_size=1)
    sessionmaker = create_sessionmaker(engine)
    try:
        organization = await make_org(sessionmaker)
        with api_factory(url) as api:
            async with httpx.AsyncClient(
                base_url=api, headers={"REB-APIKEY": organization.api_key}, timeout=30
            ) as client:

                async def post_many(count: int) -> list[httpx.Response]:
                    body = message_body(status="outbox")
                    return await asyncio.gather(
                        *(client.post("/email-messages", json=body) for _ in range(count))
                    )

                warm = await post_many(20)  # the API's pool holds open connections now
                assert {r.status_code for r in warm} == {201}
                await engine.dispose()  # the test's own: only the API's are left to drop
                assert await drop_connections(url) > 0

                during = await post_many(40)
                statuses = Counter(r.status_code for r in during)
                assert set(statuses) <= {201, 503}, statuses
                for refused in (r for r in during if r.status_code == 503):
                    assert refused.headers["content-type"] == "application/problem+json"
                    assert refused.headers["retry-after"] == "1"
                    assert "send the request again" in refused.json()["detail"]

                after = await post_many(20)
                assert {r.status_code for r in after} == {201}, [r.text for r in after]
        async with sessionmaker() as session:
            stored = await session.scalar(select(func.count()).select_from(EmailMessage))
        # Every 201 is stored, and nothing answered 503 is.
        assert stored == 20 + statuses[201] + 20
    finally:
        await engine.dispose()
