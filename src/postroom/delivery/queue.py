"""What other domains call to put a message in the delivery queue: the messages domain, in the
transaction that moves the message into `outbox` (the outbox pattern), and to take it back out
or move its due time while no worker holds it (cancel, reschedule). Nothing here imports another
domain, so the messages domain can import it without a cycle."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, insert, or_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.db.driver import Part, RowInsert, driver
from postroom.delivery.models import DeliveryAttempt, Outcome, QueuedMessage

QUEUE = cast(Table, QueuedMessage.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)


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
    rows = [_row(entry) for entry in entries]
    prepared = await driver(session)
    if prepared is not None:
        args = [_INSERT.args(row, prepared.dialect) for row in rows]
        if len(args) == 1:
            await prepared.execute(_INSERT.sql, args[0])
        else:
            await prepared.executemany(_INSERT.sql, args)
        return
    await session.execute(insert(QUEUE), rows)


def entry_rows(entries: Sequence[Entry], dialect: Dialect) -> Part:
    """The INSERT that queues `entries`, as part of a statement (Driver.execute_together)."""
    return _INSERT.unnest([_row(entry) for entry in entries], dialect)


def _row(entry: Entry) -> dict[str, object]:
    return {
        "message_id": entry.message_id,
        "delivery_key": delivery_key(entry.organization_id, entry.credential_id),
        "due_at": entry.due_at,
        "attempt_count": 0,
        "lease_token": None,
        "leased_until": None,
    }


# Withdraw and reschedule change a queue row only while no worker holds it, in one conditional
# statement in the request's transaction, so a claim and either of them cannot both win:
# - On SQLite every writing transaction starts with BEGIN IMMEDIATE: one runs after the other,
#   and the second sees what the first did (a leased row, or no row).
# - On PostgreSQL a claim locks the rows it leases (FOR UPDATE SKIP LOCKED, then UPDATE). If
#   this statement locks the row first, the claim skips it. If the claim locked it first, this
#   statement waits for the claim to commit and then (READ COMMITTED) evaluates its condition
#   again on the row as the claim left it: leased, so nothing is changed and the caller answers
#   409. Claims hold no lock across a send, so the wait is one short transaction.
def _not_held(message_id: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        QUEUE.c.message_id == message_id,
        or_(QUEUE.c.leased_until.is_(None), QUEUE.c.leased_until <= now),
    ]


async def withdraw(session: AsyncSession, message_id: str, now: datetime) -> bool:
    """Takes the message out of the queue unless a worker holds it; whether it did. An attempt
    left open by a worker whose lease ran out becomes `unknown` (it may have been delivered);
    should that worker still record its outcome, its lease is gone, so the message stays out."""
    removed = await session.execute(
        delete(QUEUE).where(*_not_held(message_id, now)).returning(QUEUE.c.message_id)
    )
    if removed.first() is None:
        return False
    await session.execute(
        update(_ATTEMPTS)
        .where(_ATTEMPTS.c.message_id == message_id, _ATTEMPTS.c.outcome.is_(None))
        .values(
            outcome=Outcome.UNKNOWN,
            finished_at=now,
            response_body="the message was cancelled after its worker's lease ran out; this "
            "attempt may have been delivered",
        )
    )
    return True


async def reschedule(
    session: AsyncSession, message_id: str, due_at: datetime, now: datetime
) -> bool:
    """Moves the message's due time unless a worker holds it; whether it did."""
    moved = await session.execute(
        update(QUEUE)
        .where(*_not_held(message_id, now))
        .values(due_at=due_at)
        .returning(QUEUE.c.message_id)
    )
    return moved.first() is not None
