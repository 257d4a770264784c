"""The claim SQL and the bookkeeping of attempts.

A claim is one statement: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING …`. On PostgreSQL, SKIP LOCKED lets any number of workers share the queue without
ever claiming the same row; on SQLite (one machine) the statement runs under BEGIN IMMEDIATE
and is atomic by itself. Claimed rows get a lease: next_attempt_at moves to the lease's end.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.delivery.models import DeliveryAttempt, Outcome, SendPacing
from postroom.messages.models import EmailMessage, MessageStatus

_messages = cast(Table, EmailMessage.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, token: str, limit: int
) -> list[EmailMessage]:
    due = (
        select(EmailMessage.id)
        .where(EmailMessage.status == MessageStatus.OUTBOX, EmailMessage.next_attempt_at <= now)
        .order_by(EmailMessage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.scalars(
        update(EmailMessage)
        .where(EmailMessage.id.in_(due.scalar_subquery()))
        .values(
            lease_token=token,
            next_attempt_at=lease_until,
            attempt_count=EmailMessage.attempt_count + 1,
        )
        .returning(EmailMessage),
        execution_options={"populate_existing": True},
    )
    return list(claimed.all())


async def close_interrupted_attempts(
    session: AsyncSession, message_ids: Sequence[str], now: datetime
) -> set[str]:
    """Attempts still open on messages being claimed again were cut off (their worker
    stopped); they become `unknown`. Returns the ids of the messages that had one."""
    if not message_ids:
        return set()
    closed = await session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.message_id.in_(message_ids), DeliveryAttempt.outcome.is_(None))
        .values(
            outcome=Outcome.UNKNOWN,
            finished_at=now,
            response_body="the worker stopped before the outcome was known (its lease ran out); "
            "the message may have been delivered",
        )
        .returning(DeliveryAttempt.message_id)
    )
    return set(closed.scalars().all())


async def open_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(DeliveryAttempt), rows)


_close_attempt = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("b_id"))
    .values(
        outcome=bindparam("b_outcome"),
        finished_at=bindparam("b_finished_at"),
        duration_ms=bindparam("b_duration_ms"),
        response_code=bindparam("b_code"),
        response_body=bindparam("b_body"),
    )
)

# Guarded by the lease token: a worker whose lease ran out (and whose message another worker
# claimed since) must not overwrite the newer claim's state. Its attempt row still tells.
_record_message = (
    update(_messages)
    .where(
        _messages.c.id == bindparam("b_id"),
        _messages.c.lease_token == bindparam("b_token"),
        _messages.c.status == MessageStatus.OUTBOX,
    )
    .values(
        status=bindparam("b_status"),
        response_code=bindparam("b_code"),
        response_body=bindparam("b_body"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        updated_at=bindparam("b_updated_at"),
        lease_token=None,
    )
)


async def close_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: b_id, b_outcome, b_finished_at, b_duration_ms, b_code, b_body."""
    if rows:
        await session.execute(_close_attempt, rows)


async def record_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: b_id, b_token, b_status, b_code, b_body, b_sent_at, b_next_attempt_at,
    b_updated_at."""
    if rows:
        await session.execute(_record_message, rows)


async def outbox_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many messages are in outbox, and the earliest next_attempt_at among them."""
    row = (
        await session.execute(
            select(func.count(), func.min(EmailMessage.next_attempt_at)).where(
                EmailMessage.status == MessageStatus.OUTBOX
            )
        )
    ).one()
    return int(row[0]), row[1]


# Back to the queue without counting the claim: for a message whose send slot is not yet near.
_release_message = (
    update(_messages)
    .where(_messages.c.id == bindparam("b_id"), _messages.c.lease_token == bindparam("b_token"))
    .values(
        next_attempt_at=bindparam("b_next_attempt_at"),
        attempt_count=_messages.c.attempt_count - 1,
        lease_token=None,
    )
)


async def release_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: b_id, b_token, b_next_attempt_at."""
    if rows:
        await session.execute(_release_message, rows)


async def delete_attempts(session: AsyncSession, attempt_ids: Sequence[str]) -> None:
    if attempt_ids:
        await session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(attempt_ids)))


async def lock_pacing(session: AsyncSession, credential_id: str, now: datetime) -> datetime:
    """The credential's next free send slot, its row locked until the transaction ends."""
    dialect = session.get_bind().dialect.name
    insert_row = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SendPacing)
    await session.execute(
        insert_row.values(credential_id=credential_id, next_slot_at=now).on_conflict_do_nothing(
            index_elements=[SendPacing.credential_id]
        )
    )
    next_slot: datetime = (
        await session.execute(
            select(SendPacing.next_slot_at)
            .where(SendPacing.credential_id == credential_id)
            .with_for_update()
        )
    ).scalar_one()
    return next_slot


async def set_pacing(session: AsyncSession, credential_id: str, next_slot_at: datetime) -> None:
    await session.execute(
        update(SendPacing)
        .where(SendPacing.credential_id == credential_id)
        .values(next_slot_at=next_slot_at)
    )


async def attempts_of(session: AsyncSession, message_id: str) -> list[DeliveryAttempt]:
    found = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.message_id == message_id)
        .order_by(DeliveryAttempt.number, DeliveryAttempt.id)
    )
    return list(found.all())
