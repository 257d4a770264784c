"""Fixtures shared by every test: databases, the API on a real socket, organizations, clients."""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.settings import DestinationSettings, FileSettings, Settings
from tests.databases import BACKEND, DatabaseFactory, postgres_reachable
from tests.servers.http import CLIENT_TLS, serve_in_thread
from tests.servers.s3 import S3Server, s3_server


def pytest_report_header() -> str:
    return f"postroom test database: {BACKEND}"


async def _check_postgres() -> None:
    if BACKEND != "postgresql":
        return
    problem = await postgres_reachable()
    if problem is None:
        return
    if os.environ.get("POSTROOM_REQUIRE_POSTGRES") == "1":
        pytest.exit(f"PostgreSQL is required (POSTROOM_REQUIRE_POSTGRES=1) but: {problem}", 1)
    pytest.skip(f"PostgreSQL is not reachable ({problem})", allow_module_level=True)


@pytest.fixture(scope="session")
async def databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DatabaseFactory]:
    await _check_postgres()
    dbs = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    await dbs.create_template()
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def database_url(databases: DatabaseFactory) -> str:
    """The database the shared API server uses; tests keep apart by organization."""
    return await databases.clone()


# The test servers listen on loopback, which a tenant's credential may reach only when allowed.
TEST_DESTINATIONS = DestinationSettings(allow="127.0.0.1")


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    overrides.setdefault("destinations", TEST_DESTINATIONS)
    return Settings(database_url=database_url, data_dir=data_dir, log_json=False, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def api_url(settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as url:
        yield url


# A second API on the same database with small file limits, for the tests of those limits.
LIMITED_FILE_BYTES = 64 * 1024
LIMITED_MESSAGE_BYTES = 100 * 1024


@pytest.fixture(scope="session")
def limited_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        database_url,
        tmp_path_factory.mktemp("limited"),
        files=FileSettings(
            max_file_bytes=LIMITED_FILE_BYTES, max_message_bytes=LIMITED_MESSAGE_BYTES
        ),
    )


@pytest.fixture(scope="session")
def limited_api_url(limited_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(limited_settings)) as url:
        yield url


@pytest.fixture(scope="session")
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url, pool_size=2)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def organization(sessionmaker: async_sessionmaker[AsyncSession]) -> auth.NewOrganization:
    async with sessionmaker() as session, session.begin():
        return await auth.create_organization(session, "test", SystemClock().now())


@pytest.fixture
async def client(
    api_url: str, organization: auth.NewOrganization
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"REB-APIKEY": organization.api_key},
        timeout=30,
        verify=CLIENT_TLS,
    ) as http:
        yield http


@pytest.fixture
async def limited_client(
    limited_api_url: str, organization: auth.NewOrganization
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=limited_api_url, headers={"REB-APIKEY": organization.api_key}, timeout=30
    ) as http:
        yield http


@pytest.fixture
async def other_client(
    api_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another organization than `client`'s."""
    async with sessionmaker() as session, session.begin():
        other = await auth.create_organization(session, "other", SystemClock().now())
    async with httpx.AsyncClient(
        base_url=api_url, headers={"REB-APIKEY": other.api_key}, timeout=30
    ) as http:
        yield http


@pytest.fixture
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, verify=CLIENT_TLS) as http:
        yield http


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on loopback, started for the first test that asks."""
    with s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


# Shared by the delivery and credentials tests; imported here so pytest finds the fixture.
from tests.harness import harness_factory  # noqa: E402, F401
