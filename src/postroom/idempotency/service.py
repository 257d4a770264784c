"""Idempotency-Key: the first answer to a key is kept (in the transaction that made the
resource) and given again to a retry of the same request; another request under the same key
is refused, and so is one that arrives while the first is still running."""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.errors import Conflict, invalid_field
from postroom.idempotency import repository
from postroom.idempotency.models import IdempotencyKey

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Claimed:
    """This request owns the key; its answer is stored with `complete`."""

    organization_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: dict[str, str]
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


async def begin(
    session: AsyncSession, organization_id: str, key: str, request_fingerprint: str, now: datetime
) -> Claimed | StoredAnswer:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and not await repository.try_lock(session, organization_id, key):
        raise Conflict(f"a request with this {HEADER} is still being processed; retry later")
    # On SQLite the request's transaction (BEGIN IMMEDIATE) already excludes every other
    # writer, so a second request with the key waits for the first and then finds its answer.
    stored = await repository.find(session, organization_id, key)
    if stored is not None and stored.expires_at <= now:
        await session.delete(stored)
        await session.flush()
        stored = None
    if stored is None:
        return Claimed(organization_id, key, request_fingerprint)
    if stored.fingerprint != request_fingerprint:
        raise invalid_field(HEADER, "this key was already used with a different request")
    return StoredAnswer(stored.response_status, stored.response_headers, stored.response_body)


async def complete(
    session: AsyncSession,
    claimed: Claimed,
    answer: StoredAnswer,
    now: datetime,
    retention: timedelta,
) -> None:
    session.add(
        IdempotencyKey(
            organization_id=claimed.organization_id,
            key=claimed.key,
            fingerprint=claimed.fingerprint,
            response_status=answer.status,
            response_headers=answer.headers,
            response_body=answer.body,
            created_at=now,
            expires_at=now + retention,
        )
    )
    await session.flush()


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    return await repository.delete_expired(session, now)
