"""What other domains call to put a message in the delivery queue: the messages domain, in the
transaction that moves the message into `outbox` (the outbox pattern). Nothing here imports
another domain, so the messages domain can import it without a cycle."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.db.driver import RowInsert, driver
from postroom.delivery.models import QueuedMessage

QUEUE = cast(Table, QueuedMessage.__table__)


def delivery_key(organization_id: str, credential_id: str | None) -> str:
    """The key a message is claimed under: its organization and the credential it goes out
    through ('' for the server-wide transport)."""
    return f"{organization_id} {credential_id or ''}"


# On PostgreSQL the row is written by asyncpg itself (db/driver.py): every message created in
# `outbox` is enqueued, in the request that creates it.
_INSERT = RowInsert(sa_inspect(QueuedMessage))


@dataclass(frozen=True)
class Entry:
    """A message to queue: its id, and what it is claimed under and when."""

    message_id: str
    organization_id: str
    credential_id: str | None
    due_at: datetime


async def enqueue(
    session: AsyncSession,
    message_id: str,
    *,
    organization_id: str,
    credential_id: str | None,
    due_at: datetime,
) -> None:
    await enqueue_many(session, [Entry(message_id, organization_id, credential_id, due_at)])


async def enqueue_many(session: AsyncSession, entries: Sequence[Entry]) -> None:
    """Queues the messages with one INSERT."""
    if not entries:
        return
    rows = [
        {
            "message_id": entry.message_id,
            "delivery_key": delivery_key(entry.organization_id, entry.credential_id),
            "due_at": entry.due_at,
            "attempt_count": 0,
        }
        for entry in entries
    ]
    prepared = await driver(session)
    if prepared is not None:
        args = [
            _INSERT.args({"lease_token": None, "leased_until": None, **row}, prepared.dialect)
            for row in rows
        ]
        if len(args) == 1:
            await prepared.execute(_INSERT.sql, args[0])
        else:
            await prepared.executemany(_INSERT.sql, args)
        return
    await session.execute(insert(QUEUE), rows)
