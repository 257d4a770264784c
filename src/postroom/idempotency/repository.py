"""SQL for idempotency keys."""

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.idempotency.models import IdempotencyKey


async def try_lock(session: AsyncSession, organization_id: str, key: str) -> bool:
    """PostgreSQL: a transaction-scoped advisory lock on (organization, key), without waiting.
    Held until the request's transaction ends, released by the server if the process dies."""
    locked = await session.scalar(
        select(func.pg_try_advisory_xact_lock(func.hashtext(organization_id), func.hashtext(key)))
    )
    return bool(locked)


async def find(session: AsyncSession, organization_id: str, key: str) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.organization_id == organization_id, IdempotencyKey.key == key
        )
    )


async def delete_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
