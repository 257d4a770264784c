"""The claim SQL (over the delivery_queue table) and the bookkeeping of attempts.

A claim is fair across delivery keys: an organization and the credential its messages go out
through (none: the server-wide transport). It first lists the keys with due messages, those whose
oldest due message has waited longest first, by a loose index scan over ix_delivery_queue_key_due
(one index probe per key, however many messages each key has queued); then it takes the oldest few
due messages of each key (index probes again) and interleaves them round-robin: the first of every
key, then the second of every key, and so on. A tenant with 100,000 queued messages thus delays
another's by at most one message per claim.

The chosen rows are then claimed in one statement: `UPDATE … WHERE message_id IN (SELECT … WHERE
message_id IN (chosen) AND still claimable FOR UPDATE SKIP LOCKED) RETURNING …`. On PostgreSQL,
SKIP LOCKED lets any number of workers share the queue without ever claiming the same row (a row
another claim took meanwhile is locked or leased, so it is left out); on SQLite (one machine) the
claim runs under BEGIN IMMEDIATE and is atomic by itself. A claimed row is leased (lease_token,
leased_until) until it is recorded or the lease runs out.
"""

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.expression import Select

from postroom.db.base import UTCDateTime
from postroom.db.driver import driver
from postroom.delivery.models import (
    DeliveryAttempt,
    Outcome,
    QueuedMessage,
    SendPacing,
    WorkerHeartbeat,
)
from postroom.delivery.queue import delivery_key

__all__ = ["delivery_key"]

_queue = cast(Table, QueuedMessage.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)
# Statements over the tables themselves (Core), not the mapped classes: the ORM's bulk
# UPDATE/DELETE machinery (session synchronisation, its compile step) cost a third of a worker's
# CPU, for rows nothing here keeps as objects.
_q = _queue.c

# Per claim; also keeps the UNION ALL of per-key probes under SQLite's 500 compound terms.
MAX_KEYS_PER_CLAIM = 200
# Choices a claim makes before it gives up when other workers claim all it chose first.
CONTENDED_TRIES = 3


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Due, and not leased (or its lease ran out: its worker stopped)."""
    return _q.due_at <= now, or_(_q.leased_until.is_(None), _q.leased_until <= now)


_CLAIMABLE_SQL = "due_at <= :now AND (leased_until IS NULL OR leased_until <= :now)"

due_keys = text(
    """
    WITH RECURSIVE queue_keys(k) AS (
        SELECT (SELECT delivery_key FROM delivery_queue ORDER BY delivery_key LIMIT 1)
        UNION ALL
        SELECT (SELECT delivery_key FROM delivery_queue
                WHERE delivery_key > queue_keys.k ORDER BY delivery_key LIMIT 1)
        FROM queue_keys WHERE queue_keys.k IS NOT NULL
    )
    SELECT k, oldest FROM (
        SELECT k, (SELECT due_at FROM delivery_queue
                   WHERE delivery_key = queue_keys.k AND @claimable
                   ORDER BY due_at LIMIT 1) AS oldest
        FROM queue_keys WHERE k IS NOT NULL
    ) AS due WHERE oldest IS NOT NULL ORDER BY oldest, k
    """.replace("@claimable", _CLAIMABLE_SQL)
).bindparams(bindparam("now", type_=UTCDateTime()))


@dataclass(frozen=True)
class Claimed:
    """A queue row just claimed."""

    message_id: str
    attempt_count: int
    """Claims of the message so far, this one included."""
    key: str


# The same statements for asyncpg itself (db/driver.py), on PostgreSQL: a claim and a record
# are a worker's whole database cost, and SQLAlchemy's execution around each statement (a cache
# key, an IN list rendered anew for every claim, result metadata) cost about as much CPU as the
# rest of a message's delivery (bench/RESULTS.md).
_CLAIMABLE_PG = "due_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)"
_DUE_KEYS_PG = str(due_keys.text).replace(":now", "$1")
_CANDIDATES_PG = f"""
    SELECT wanted.k, due.message_id, due.due_at
    FROM unnest($2::varchar[], $3::int[]) AS wanted(k, n)
    CROSS JOIN LATERAL (
        SELECT message_id, due_at FROM delivery_queue
        WHERE delivery_key = wanted.k AND {_CLAIMABLE_PG}
        ORDER BY due_at LIMIT wanted.n
    ) AS due
"""  # noqa: S608 (no value in it)
_CLAIM_PG = f"""
    UPDATE delivery_queue
    SET lease_token = $3, leased_until = $4, attempt_count = attempt_count + 1
    WHERE message_id = ANY($2::varchar[]) AND message_id IN (
        SELECT message_id FROM delivery_queue
        WHERE message_id = ANY($2::varchar[]) AND {_CLAIMABLE_PG}
        FOR UPDATE SKIP LOCKED
    )
    RETURNING message_id, attempt_count, delivery_key
"""  # noqa: S608
_DEQUEUE_PG = (
    "DELETE FROM delivery_queue WHERE lease_token = $1 AND message_id = ANY($2::varchar[]) "
    "RETURNING message_id"
)


async def _oldest_due_keys(session: AsyncSession, now: datetime) -> list[str]:
    prepared = await driver(session)
    if prepared is not None:
        return [str(row[0]) for row in await prepared.fetch(_DUE_KEYS_PG, (now,))]
    rows = await session.execute(due_keys, {"now": now})
    return [str(row[0]) for row in rows]


def candidates_statement(now: datetime, wanted: Mapping[str, int]) -> Select[Any]:
    """(key, id, due) of the oldest `wanted[key]` claimable messages of each key."""
    probes = []
    for key, count in wanted.items():
        probe = (
            select(_q.delivery_key, _q.message_id, _q.due_at)
            .where(_q.delivery_key == key, *_claimable(now))
            .order_by(_q.due_at)
            .limit(count)
            .subquery()
        )
        probes.append(select(probe.c.delivery_key, probe.c.message_id, probe.c.due_at))
    return select(union_all(*probes).subquery())


async def _candidates(
    session: AsyncSession, now: datetime, wanted: Mapping[str, int]
) -> list[tuple[str, str, datetime]]:
    if not wanted:
        return []
    prepared = await driver(session)
    if prepared is not None:
        keys, counts = list(wanted), list(wanted.values())
        rows = await prepared.fetch(_CANDIDATES_PG, (now, keys, counts))
        return [(str(k), str(i), due) for k, i, due in rows]
    found = await session.execute(candidates_statement(now, wanted))
    return [(str(k), str(i), due) for k, i, due in found]


def claim_statement(
    chosen: Sequence[str], now: datetime, lease_until: datetime, token: str
) -> "ReturningUpdate[str, int, str]":
    """Leases those of `chosen` still claimable and not being claimed by another worker."""
    still_claimable = (
        select(_q.message_id)
        .where(_q.message_id.in_(chosen), *_claimable(now))
        .with_for_update(skip_locked=True)
    )
    return (
        update(_queue)
        # The ids again, outside: without them PostgreSQL may hash-join the subquery against a
        # scan of the whole queue instead of probing the primary key for each chosen id.
        .where(_q.message_id.in_(chosen), _q.message_id.in_(still_claimable.scalar_subquery()))
        .values(
            lease_token=token,
            leased_until=lease_until,
            attempt_count=_q.attempt_count + 1,
        )
        .returning(_q.message_id, _q.attempt_count, _q.delivery_key)
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
) -> list[Claimed]:
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
        prepared = await driver(session)
        if prepared is not None:
            claimed = await prepared.fetch(_CLAIM_PG, (now, chosen, token, lease_until))
        else:
            claimed = list(await session.execute(claim_statement(chosen, now, lease_until, token)))
        taken = [Claimed(str(i), int(n), str(k)) for i, n, k in claimed]
        if taken:
            order = {id_: position for position, id_ in enumerate(chosen)}
            return sorted(taken, key=lambda c: order[c.message_id])
        # Another worker claimed every one of them first (PostgreSQL): choose again.
    return []


async def dequeue(session: AsyncSession, leases: Sequence[tuple[str, str]]) -> set[str]:
    """Removes the queue rows of these (message id, lease token) pairs whose lease is still
    theirs; the ids removed. A worker whose lease ran out (and whose message another worker
    claimed since) must not settle the newer claim's message; its attempt row still tells."""
    by_token: dict[str, list[str]] = {}
    for message_id, token in leases:
        by_token.setdefault(token, []).append(message_id)
    removed: set[str] = set()
    prepared = await driver(session)
    # One statement per claim the leases came from (usually one or two): a primary-key probe
    # for each id.
    for token, message_ids in by_token.items():
        if prepared is not None:
            rows = await prepared.fetch(_DEQUEUE_PG, (token, message_ids))
            removed.update(str(row[0]) for row in rows)
            continue
        deleted = await session.execute(
            delete(_queue)
            .where(_q.lease_token == token, _q.message_id.in_(message_ids))
            .returning(_q.message_id)
        )
        removed.update(deleted.scalars().all())
    return removed


async def retry_later(session: AsyncSession, message_id: str, token: str, due_at: datetime) -> bool:
    """The message is due again at `due_at`, unless its lease is no longer this token's."""
    moved = await session.execute(
        update(_queue)
        .where(_q.message_id == message_id, _q.lease_token == token)
        .values(due_at=due_at, lease_token=None, leased_until=None)
        .returning(_q.message_id)
    )
    return moved.first() is not None


async def close_interrupted_attempts(
    session: AsyncSession, message_ids: Sequence[str], now: datetime
) -> set[str]:
    """Attempts still open on messages being claimed again were cut off (their worker
    stopped); they become `unknown`. Returns the ids of the messages that had one."""
    if not message_ids:
        return set()
    closed = await session.execute(
        update(_attempts)
        .where(_attempts.c.message_id.in_(message_ids), _attempts.c.outcome.is_(None))
        .values(
            outcome=Outcome.UNKNOWN,
            finished_at=now,
            response_body="the worker stopped before the outcome was known (its lease ran out); "
            "the message may have been delivered",
        )
        .returning(_attempts.c.message_id)
    )
    return set(closed.scalars().all())


_ATTEMPT_COLUMNS = ("id", "message_id", "number", "transport", "credential_id", "worker")
_OPEN_ATTEMPT_PG = (
    "INSERT INTO delivery_attempts (id, message_id, number, transport, credential_id, worker, "
    "started_at, suppressed, outcome, finished_at, duration_ms, response_code, response_body) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)"
)


async def open_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: the columns of _ATTEMPT_COLUMNS, started_at and suppressed (a list or None);
    and outcome, finished_at, duration_ms, response_code, response_body for an attempt already
    over (suppressed)."""
    if not rows:
        return
    prepared = await driver(session)
    if prepared is None:
        await session.execute(insert(_attempts), rows)
        return
    await prepared.executemany(
        _OPEN_ATTEMPT_PG,
        [
            (
                *(row[column] for column in _ATTEMPT_COLUMNS),
                row["started_at"],
                None if row.get("suppressed") is None else json.dumps(row["suppressed"]),
                row.get("outcome"),
                row.get("finished_at"),
                row.get("duration_ms"),
                row.get("response_code"),
                row.get("response_body"),
            )
            for row in rows
        ],
    )


_close_attempt = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("b_id"))
    .values(
        outcome=bindparam("b_outcome"),
        finished_at=bindparam("b_finished_at"),
        duration_ms=bindparam("b_duration_ms"),
        response_code=bindparam("b_code"),
        response_body=bindparam("b_body"),
        provider_message_id=bindparam("b_provider_message_id"),
    )
)


_CLOSE_ATTEMPT_FIELDS = (
    "b_id",
    "b_outcome",
    "b_finished_at",
    "b_duration_ms",
    "b_code",
    "b_body",
    "b_provider_message_id",
)
_CLOSE_ATTEMPT_PG = (
    "UPDATE delivery_attempts SET outcome = $2, finished_at = $3, duration_ms = $4, "
    "response_code = $5, response_body = $6, provider_message_id = $7 WHERE id = $1"
)


async def close_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: b_id, b_outcome, b_finished_at, b_duration_ms, b_code, b_body,
    b_provider_message_id."""
    if not rows:
        return
    prepared = await driver(session)
    if prepared is None:
        await session.execute(_close_attempt, rows)
        return
    await prepared.executemany(
        _CLOSE_ATTEMPT_PG, [tuple(row[field] for field in _CLOSE_ATTEMPT_FIELDS) for row in rows]
    )


async def oldest_due(session: AsyncSession, now: datetime) -> datetime | None:
    """When the longest-waiting claimable message became due, if one is due (not waiting for a
    retry, nor claimed): a walk of ix_delivery_queue_due from its start."""
    oldest: datetime | None = await session.scalar(
        select(func.min(_q.due_at)).where(*_claimable(now))
    )
    return oldest


async def queue_stats(session: AsyncSession, now: datetime) -> tuple[int, datetime | None]:
    """How many messages are queued, and the earliest due time among those not claimed."""
    claimable = or_(_q.leased_until.is_(None), _q.leased_until <= now)
    row = (
        await session.execute(select(func.count(), func.min(case((claimable, _q.due_at)))))
    ).one()
    return int(row[0]), row[1]


# Back to the queue without counting the claim: for a message whose send slot is not yet near.
_release = (
    update(_queue)
    .where(_queue.c.message_id == bindparam("b_id"), _queue.c.lease_token == bindparam("b_token"))
    .values(
        due_at=bindparam("b_due_at"),
        attempt_count=_queue.c.attempt_count - 1,
        lease_token=None,
        leased_until=None,
    )
)


async def release(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row: b_id, b_token, b_due_at."""
    if rows:
        await session.execute(_release, rows)


async def delete_attempts(session: AsyncSession, attempt_ids: Sequence[str]) -> None:
    if attempt_ids:
        await session.execute(delete(_attempts).where(_attempts.c.id.in_(attempt_ids)))


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


async def attempts_by_id(session: AsyncSession, ids: Sequence[str]) -> list[DeliveryAttempt]:
    """As the database holds them now (they were just closed by UPDATE statements)."""
    if not ids:
        return []
    found = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.id.in_(ids))
        .execution_options(populate_existing=True)
    )
    return list(found.all())


async def attempts_of(session: AsyncSession, message_id: str) -> list[DeliveryAttempt]:
    found = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.message_id == message_id)
        # In time first: a message cancelled and sent again numbers each send's attempts from 1.
        .order_by(DeliveryAttempt.started_at, DeliveryAttempt.number, DeliveryAttempt.id)
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


async def messages_by_provider_id(
    session: AsyncSession, provider_message_ids: Collection[str]
) -> dict[str, str]:
    """The message each of these provider message ids was accepted as (by an attempt)."""
    if not provider_message_ids:
        return {}
    rows = await session.execute(
        select(DeliveryAttempt.provider_message_id, DeliveryAttempt.message_id).where(
            DeliveryAttempt.provider_message_id.in_(list(provider_message_ids))
        )
    )
    return {p: m for p, m in rows.all() if p is not None}
