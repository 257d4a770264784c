"""The SQL an engine's connections run meanwhile: SQLAlchemy's statements (its cursor event) and,
on PostgreSQL, those run by asyncpg itself (db/driver.py; asyncpg's query logger)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []
    loggers: list[tuple[Any, Any]] = []

    def on_cursor(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def log_query(query: Any) -> None:
        if not query.query.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(query.query)

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        raw = getattr(dbapi_connection, "driver_connection", None)
        if raw is not None and hasattr(raw, "add_query_logger"):
            raw.add_query_logger(log_query)
            loggers.append((raw, log_query))

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", on_cursor)
    event.listen(sync.pool, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(sync, "before_cursor_execute", on_cursor)
        event.remove(sync.pool, "checkout", on_checkout)
        for raw, logger in loggers:
            raw.remove_query_logger(logger)
