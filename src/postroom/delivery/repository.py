"""The claim SQL and the bookkeeping of attempts.

A claim is fair across delivery keys: an organization and the credential its messages go out
through (none: the server-wide transport). It first lists the keys with due messages, those whose
oldest due message has waited longest first, by a loose index scan over ix_email_messages_due_key
(one index probe per key, however many messages each key has queued); then it takes the oldest few
due messages of each key (index probes again) and interleaves them round-robin: the first of every
key, then the second of every key, and so on. A tenant with 100,000 queued messages thus delays
another's by at most one message per claim.

The chosen rows are then claimed in one statement: `UPDATE … WHERE id IN (SELECT … WHERE id IN
(chosen) AND still due FOR UPDATE SKIP LOCKED) RETURNING …`. On PostgreSQL, SKIP LOCKED lets any
number of workers share the queue without ever claiming the same row (a row another claim took
meanwhile is locked or no longer due, so it is left out); on SQLite (one machine) the claim runs
under BEGIN IMMEDIATE and is atomic by itself. Claimed rows get a lease: next_attempt_at moves to
the lease's end.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.expression import ColumnClause, Select

from postroom.db.base import UTCDateTime
from postroom.delivery.models import DeliveryAttempt, Outcome, SendPacing, WorkerHeartbeat
from postroom.messages.models import DELIVERY_KEY_SQL, EmailMessage, MessageStatus

_messages = cast(Table, EmailMessage.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)

# Written out as in the index, so that both databases match the expression and the partial
# index's predicate (a bound 'outbox' would not prove the predicate in a generic plan).
_key: ColumnClause[str] = literal_column(DELIVERY_KEY_SQL, String())
_IN_OUTBOX = text("email_messages.status = 'outbox'")
# Per claim; also keeps the UNION ALL of per-key probes under SQLite's 500 compound terms.
MAX_KEYS_PER_CLAIM = 200
# Choices a claim makes before it gives up when other workers claim all it chose first.
CONTENDED_TRIES = 3

due_keys = text(
    """
    WITH RECURSIVE outbox_keys(k) AS (
        SELECT (SELECT @key FROM email_messages
                WHERE email_messages.status = 'outbox' ORDER BY @key LIMIT 1)
        UNION ALL
        SELECT (SELECT @key FROM email_messages
                WHERE email_messages.status = 'outbox' AND @key > outbox_keys.k
                ORDER BY @key LIMIT 1)
        FROM outbox_keys WHERE outbox_keys.k IS NOT NULL
    )
    SELECT k, oldest FROM (
        SELECT k, (SELECT next_attempt_at FROM email_messages
                   WHERE email_messages.status = 'outbox' AND @key = outbox_keys.k
                     AND next_attempt_at <= :now
                   ORDER BY next_attempt_at LIMIT 1) AS oldest
        FROM outbox_keys WHERE k IS NOT NULL
    ) AS due WHERE oldest IS NOT NULL ORDER BY oldest, k
    """.replace("@key", DELIVERY_KEY_SQL)
).bindparams(bindparam("now", type_=UTCDateTime()))


def delivery_key(organization_id: str, credential_id: str | None) -> str:
    """The key a message is claimed under (as DELIVERY_KEY_SQL computes it)."""
    return f"{organization_id} {credential_id or ''}"


def key_of(message: EmailMessage) -> str:
    credential = message.credential_hash
    if credential is None:
        credential = message.sender_credential_id
    return delivery_key(message.organization_id, credential)


async def _oldest_due_keys(session: AsyncSession, now: datetime) -> list[str]:
    rows = await session.execute(due_keys, {"now": now})
    return [str(row[0]) for row in rows]


def candidates_statement(now: datetime, wanted: Mapping[str, int]) -> Select[Any]:
    """(key, id, due) of the oldest `wanted[key]` due messages of each key (at least one)."""
    probes = []
    for key, count in wanted.items():
        probe = (
            select(_key.label("k"), EmailMessage.id, EmailMessage.next_attempt_at)
            .where(_IN_OUTBOX, _key == key, EmailMessage.next_attempt_at <= now)
            .order_by(EmailMessage.next_attempt_at)
            .limit(count)
            .subquery()
        )
        probes.append(select(probe.c.k, probe.c.id, probe.c.next_attempt_at))
    return select(union_all(*probes).subquery())


async def _candidates(
    session: AsyncSession, now: datetime, wanted: Mapping[str, int]
) -> list[tuple[str, str, datetime]]:
    if not wanted:
        return []
    rows = await session.execute(candidates_statement(now, wanted))
    return [(str(k), str(i), due) for k, i, due in rows]


def claim_statement(
    chosen: Sequence[str], now: datetime, lease_until: datetime, token: str
) -> ReturningUpdate[Any]:
    """Leases those of `chosen` still due and not being claimed by another worker."""
    still_due = (
        select(EmailMessage.id)
        .where(EmailMessage.id.in_(chosen), _IN_OUTBOX, EmailMessage.next_attempt_at <= now)
        .with_for_update(skip_locked=True)
    )
    return (
        update(EmailMessage)
        .where(EmailMessage.id.in_(still_due.scalar_subquery()))
        .values(
            lease_token=token,
            next_attempt_at=lease_until,
            attempt_count=EmailMessage.attempt_count + 1,
        )
        .returning(EmailMessage)
    )


def round_robin(candidates: list[tuple[str, str, datetime]], limit: int) -> list[str]:
    """The ids of up to `limit` candidates: every key's first, then every key's second, …
    (within a rank, the longest due first)."""
    ranked: list[tuple[int, datetime, str]] = []
    for _, group in groupby(sorted(candidates, key=lambda c: (c[0], c[2])), key=lambda c: c[0]):
        ranked.extend((rank, due, id_) for rank, (_, id_, due) in enumerate(group))
    return [id_ for _, _, id_ in sorted(ranked)[:limit]]


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    token: str,
    limit: int,
    allowance: Mapping[str, int] | None = None,
    per_key: int | None = None,
) -> list[EmailMessage]:
    """Up to `limit` due messages, fairly across keys: at most `per_key` of a key (default:
    `limit`), and at most `allowance[key]` of a key the mapping names (0: none)."""
    cap = limit if per_key is None else min(per_key, limit)
    for _ in range(CONTENDED_TRIES):
        wanted: dict[str, int] = {}
        for key in await _oldest_due_keys(session, now):
            count = min(cap, (allowance or {}).get(key, cap))
            if count > 0:
                wanted[key] = count
                if len(wanted) == MAX_KEYS_PER_CLAIM:
                    break
        chosen = round_robin(await _candidates(session, now, wanted), limit)
        if not chosen:
            return []
        claimed = await session.scalars(
            claim_statement(chosen, now, lease_until, token),
            execution_options={"populate_existing": True},
        )
        taken = list(claimed.all())
        if taken:
            return taken
        # Another worker claimed every one of them first (PostgreSQL): choose again.
    return []


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


# A final status, row by row, to learn which guards held: an executemany cannot say (RETURNING
# is not allowed with it, and its rowcount is the batch's).
_record_final_message = _record_message.returning(_messages.c.organization_id)


async def record_messages(
    session: AsyncSession, rows: list[dict[str, Any]]
) -> list[tuple[str, MessageStatus]]:
    """Each row: b_id, b_token, b_status, b_code, b_body, b_sent_at, b_next_attempt_at,
    b_updated_at. Returns the (organization_id, status) of each message that left outbox (its
    guard held and its new status is sent or failed): what the kept counts must follow."""
    staying = [row for row in rows if row["b_status"] == MessageStatus.OUTBOX]
    if staying:
        await session.execute(_record_message, staying)
    left: list[tuple[str, MessageStatus]] = []
    for row in rows:
        if row["b_status"] != MessageStatus.OUTBOX:
            organization_id = await session.scalar(_record_final_message, row)
            if organization_id is not None:
                left.append((str(organization_id), MessageStatus(row["b_status"])))
    return left


async def oldest_due(session: AsyncSession, now: datetime) -> datetime | None:
    """When the longest-waiting message in outbox became due, if one is due (not waiting for a
    retry, nor claimed): one probe of ix_email_messages_due, however long the queue."""
    oldest: datetime | None = await session.scalar(
        select(func.min(EmailMessage.next_attempt_at)).where(
            EmailMessage.status == MessageStatus.OUTBOX, EmailMessage.next_attempt_at <= now
        )
    )
    return oldest


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


async def save_heartbeat(session: AsyncSession, row: dict[str, Any]) -> None:
    """The worker's row, inserted, or its last_seen_at moved if it is there already."""
    dialect = session.get_bind().dialect.name
    insert_row = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(WorkerHeartbeat)
    await session.execute(
        insert_row.values(**row).on_conflict_do_update(
            index_elements=[WorkerHeartbeat.id], set_={"last_seen_at": row["last_seen_at"]}
        )
    )


async def delete_heartbeats(
    session: AsyncSession, *, worker_id: str | None = None, seen_before: datetime | None = None
) -> None:
    statement = delete(WorkerHeartbeat)
    if worker_id is not None:
        statement = statement.where(WorkerHeartbeat.id == worker_id)
    if seen_before is not None:
        statement = statement.where(WorkerHeartbeat.last_seen_at < seen_before)
    await session.execute(statement)


async def workers_seen_since(session: AsyncSession, since: datetime) -> int:
    count = await session.scalar(select(func.count()).where(WorkerHeartbeat.last_seen_at >= since))
    return int(count or 0)
