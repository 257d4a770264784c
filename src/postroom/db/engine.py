"""Engines for SQLite (the single-machine default) and PostgreSQL (the scale-out store)."""

import asyncio
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _json_text(value: Any) -> str:
    """A JSON column's value as text: pydantic-core's encoder, ~0.25 µs for a list of addresses
    against json.dumps's ~2 (a new message has seven such columns)."""
    return to_json(value).decode()


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    """On PostgreSQL, `pool_size` connections are kept open once made, and up to `max_overflow`
    more (default: as many) are opened while those are busy and closed when they come back."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No ping before each use (a round trip on every request): a connection found dead is
        # replaced, with every one older than it, and its request answered 503 (api/problems).
        overflow = pool_size if max_overflow is None else max_overflow
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=overflow, json_serializer=_json_text
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, json_serializer=_json_text)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is turned off so that we can say BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; busy_timeout makes a writer wait its turn
        # instead of failing; synchronous=FULL keeps a committed message through a power cut.
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A reader takes no lock: in WAL mode it reads its snapshot beside the writer.
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: a deferred transaction that reads and then writes can
        # fail with SQLITE_BUSY at once (no busy wait) if another writer committed meanwhile.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# An execution option: the transactions of this engine (see reading()) only read.
READ_ONLY = "postroom_read_only"


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for transactions that only read: on SQLite they do not take
    the write lock (BEGIN IMMEDIATE), so reads never wait behind a writer."""
    return engine.execution_options(**{READ_ONLY: True})


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


class ConnectionGate:
    """Lets at most `size` requests hold a session at once, first come first served, so that
    none waits inside the pool: the pool's queue lets a newcomer take a connection that was
    handed back while an older waiter was being woken (which then queues again, at the back),
    and arms a timer for every wait. Under more requests than connections that gave a few of
    them several times the median latency, and cost CPU. A wait longer than `timeout` (as long
    as the pool would have waited) raises TimeoutError."""

    def __init__(self, size: int, timeout: float = 30) -> None:
        self._free = asyncio.Semaphore(size)
        self._timeout = timeout

    async def enter(self) -> None:
        if not self._free.locked():
            await self._free.acquire()  # at once: nobody waits
            return
        async with asyncio.timeout(self._timeout):
            await self._free.acquire()

    def leave(self) -> None:
        self._free.release()
