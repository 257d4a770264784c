"""SQL run by asyncpg itself, for the few statements of the hottest paths (POST
/email-messages; a worker's claims and records): SQLAlchemy's execution around one statement
(cache key, execution context, cursor adapter, result, a greenlet switch each way) costs ~0.1 ms
of CPU, four times what asyncpg spends on it (bench/RESULTS.md). PostgreSQL only: on SQLite
`driver()` is None and the caller runs its statement through the session.

A `Driver` runs them either inside a session's transaction, sharing its connection (they commit
or roll back with it; a connection found closed is handed back to SQLAlchemy, which does what it
does for any lost connection: invalidates it and every older one, and api/problems.py answers
503), or by itself on one of `OwnConnections`: the group commit's writers, whose transactions
through a session and SQLAlchemy's pool cost ~0.35 ms more CPU each than asyncpg's own
(bench/RESULTS.md), and which write a group in one statement (`execute_together`)."""

import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.sqltypes import NullType


class Driver:
    """An asyncpg connection: under a session's transaction (`pooled_by` its SQLAlchemy
    connection), or one of OwnConnections, with no transaction around its statements."""

    def __init__(
        self,
        driver: asyncpg.Connection,
        dialect: Dialect,
        pooled_by: AsyncConnection | None = None,
    ) -> None:
        self._driver = driver
        self.dialect = dialect
        self._pooled_by = pooled_by

    def is_closed(self) -> bool:
        return bool(self._driver.is_closed())

    async def execute(self, sql: str, args: Sequence[Any]) -> None:
        try:
            await self._driver.execute(sql, *args)
        except Exception:
            await self._hand_over_loss()
            raise

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """The statement once per row, pipelined in one round trip (asyncpg's executemany)."""
        try:
            await self._driver.executemany(sql, rows)
        except Exception:
            await self._hand_over_loss()
            raise

    async def execute_together(self, parts: Sequence["Part"]) -> None:
        """`parts` as one statement (each but the last a data-modifying WITH query): one round
        trip, and atomic by itself, even outside a transaction. Each part numbers its
        placeholders from $1; the same parts make the same statement, prepared once."""
        sql, args = _together(tuple(part.sql for part in parts)), []
        for part in parts:
            args += part.args
        await self.execute(sql, args)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self._driver.fetch(sql, *args)
            return rows
        except Exception:
            await self._hand_over_loss()
            raise

    async def fetchrow(self, sql: str, args: Sequence[Any]) -> asyncpg.Record | None:
        try:
            return await self._driver.fetchrow(sql, *args)
        except Exception:
            await self._hand_over_loss()
            raise

    async def _hand_over_loss(self) -> None:
        """If a pooled connection is gone, let SQLAlchemy find that out through its own
        execution: it raises the DBAPIError of a lost connection (connection_invalidated) after
        replacing it, instead of our error. (One of OwnConnections is dropped by them.)"""
        if self._pooled_by is not None and self.is_closed():
            await self._pooled_by.exec_driver_sql("SELECT 1")


@dataclass(frozen=True)
class Part:
    """One statement of a Driver.execute_together, with its arguments ($1, $2, … in `sql`)."""

    sql: str
    args: list[Any]


_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=16)
def _together(statements: tuple[str, ...]) -> str:
    renumbered: list[str] = []
    offset = 0
    for sql in statements:

        def shifted(found: re.Match[str], by: int = offset) -> str:
            return f"${int(found[1]) + by}"

        renumbered.append(_PLACEHOLDER.sub(shifted, sql))
        offset += max((int(n) for n in _PLACEHOLDER.findall(sql)), default=0)
    *first, last = renumbered
    queries = ", ".join(f"part_{n} AS ({sql})" for n, sql in enumerate(first))
    return f"WITH {queries} {last}" if first else last


class ConnectionReplaced(Exception):
    """One of OwnConnections was found closed (a restart, a failover): it has been dropped, and
    the next user opens a new one. The statement under way was cut short, as one in a session's
    transaction is (unless it had already committed and only its answer was lost)."""


# What SQLAlchemy's asyncpg adapter takes from the URL for itself, not asyncpg.connect.
_ADAPTER_ONLY = {
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_creator_fn",
}


class OwnConnections:
    """PostgreSQL connections of their own, outside SQLAlchemy's pool, one for each user at
    once (the group commit has at most a few writers): opened when first needed, kept while
    they work, dropped when found closed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._dialect = engine.dialect
        _, arguments = engine.dialect.create_connect_args(engine.url)
        self._connect_args = {k: v for k, v in arguments.items() if k not in _ADAPTER_ONLY}
        self._idle: list[asyncpg.Connection] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Driver]:
        """A Driver with no transaction around its statements: each commits by itself (one
        statement, as Driver.execute_together makes, is atomic; BEGIN and COMMIT would be two
        more round trips)."""
        connection = await self._take()
        try:
            yield Driver(connection, self._dialect)
        except Exception as error:
            if connection.is_closed():
                raise ConnectionReplaced("the connection to the database was lost") from error
            self._idle.append(connection)
            raise
        except BaseException:
            connection.terminate()  # cancelled mid-statement: its state is unknown
            raise
        self._idle.append(connection)

    async def _take(self) -> asyncpg.Connection:
        """An idle connection, or a new one. One that the server closed while it sat idle (a
        restart: asyncpg reads the server's goodbye as it comes) is dropped here, not used."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
        return await asyncpg.connect(**self._connect_args)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


Statements = AsyncSession | Driver
"""Where a hot path's statements run: a session's transaction (through a Driver on PostgreSQL,
the session itself on SQLite), or a Driver's own."""


_KEPT = "postroom.driver"


async def driver(session: Statements) -> Driver | None:
    """The session's PostgreSQL connection with its transaction begun (None on SQLite), or the
    Driver given. The session's pending changes are flushed first, as a query through it would
    do."""
    if isinstance(session, Driver):
        return session
    if session.get_bind().dialect.driver != "asyncpg":
        return None
    if session.new or session.deleted or session.dirty:
        await session.flush()
    # Kept for the rest of the session's transaction, which keeps its connection until it ends.
    # The transaction is named by a weak reference: a strong one would make a reference cycle
    # (session -> info -> transaction -> session), left for the garbage collector to find.
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_KEPT)
    if kept is not None and transaction is not None and kept[0]() is transaction:
        found: Driver = kept[1]
        return found
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapted: Any = pooled.dbapi_connection
    # SQLAlchemy's adapter begins its transaction on the first statement it runs itself; ours
    # come first, so it is begun here, where the adapter keeps it and later commits it. This is
    # the one use of the adapter's internals (tests/db/test_driver.py checks it still holds).
    if adapted._transaction is None:
        try:
            await adapted._start_transaction()
        except Exception:
            await Driver(pooled.driver_connection, connection.dialect, connection)._hand_over_loss()
            raise
    begun = Driver(pooled.driver_connection, connection.dialect, connection)
    begun_in = session.sync_session.get_transaction()
    assert begun_in is not None  # session.connection() began it
    session.info[_KEPT] = (weakref.ref(begun_in), begun)
    return begun


class RowInsert:
    """One INSERT of a whole row of a mapped class, with the values the ORM's bulk INSERT would
    send for a dict of its attributes: each through its column type's bind processor; a None
    left out (so the column's default applies) unless the type stores None as a value of its
    own (JSON's null)."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        table = mapper.local_table
        assert isinstance(table, Table)
        attributes = [(a.key, table.c[a.columns[0].key]) for a in mapper.column_attrs]
        columns = ", ".join(f'"{column.name}"' for _, column in attributes)
        placeholders = ", ".join(f"${n}" for n in range(1, len(attributes) + 1))
        self.sql = f'INSERT INTO "{table.name}" ({columns}) VALUES ({placeholders})'  # noqa: S608
        self._attributes = attributes
        self._table = table.name
        self._converters: dict[str, list[Callable[[Any], Any]]] = {}

    def args(self, values: Mapping[str, Any], dialect: Dialect) -> list[Any]:
        """The statement's arguments for `values`, a value for each attribute."""
        converters = self._converters.get(dialect.name)
        if converters is None:
            converters = [_converter(column, dialect) for _, column in self._attributes]
            self._converters[dialect.name] = converters
        return [
            convert(values[key])
            for (key, _), convert in zip(self._attributes, converters, strict=True)
        ]

    def unnest(self, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> Part:
        """One INSERT of all `rows`, a column's values as one array (PostgreSQL's unnest): for
        Driver.execute_together, where executemany's one statement a row cannot go."""
        args = [self.args(values, dialect) for values in rows]
        columns = [list(values) for values in zip(*args, strict=True)] if args else []
        return Part(
            _unnest_sql(self._table, tuple(c for _, c in self._attributes), dialect),
            columns or [[] for _ in self._attributes],
        )


@lru_cache(maxsize=8)
def _unnest_sql(table: str, columns: tuple[Column[Any], ...], dialect: Dialect) -> str:
    names = ", ".join(f'"{column.name}"' for column in columns)
    arrays = ", ".join(f"${n}::{_sql_type(c, dialect)}[]" for n, c in enumerate(columns, 1))
    return f'INSERT INTO "{table}" ({names}) SELECT * FROM unnest({arrays})'  # noqa: S608


def _sql_type(column: Column[Any], dialect: Dialect) -> str:
    type_ = column.type
    if isinstance(type_, NullType) and column.foreign_keys:  # a foreign key's, not yet copied
        type_ = next(iter(column.foreign_keys)).column.type
    return str(type_.dialect_impl(dialect).compile(dialect=dialect))


def _converter(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    bind = column.type.dialect_impl(dialect).bind_processor(dialect)
    process: Callable[[Any], Any] = bind if bind is not None else _same
    if column.type.should_evaluate_none:
        return process
    default = _default_of(column)

    def convert(value: Any) -> Any:
        return default if value is None else process(value)

    return convert


def _default_of(column: Column[Any]) -> Any:
    """What an INSERT that leaves the column out stores in it, for the defaults a row can take
    here (a constant, or none: NULL)."""
    if column.default is None and column.server_default is None:
        return None
    if column.default is not None and column.default.is_scalar:
        return column.default.arg  # type: ignore[attr-defined]
    raise ValueError(f"{column}: only a constant default can be written as a value")


def _same(value: Any) -> Any:
    return value


def session_of(statements: Statements) -> AsyncSession:
    """The session behind `statements` for which `driver()` was None (SQLite's)."""
    if not isinstance(statements, AsyncSession):
        raise TypeError("a Driver runs its statements itself")
    return statements
