"""SQL for organizations and API keys."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth.models import ApiKey, Organization


async def organization_count(session: AsyncSession, *, leaving_out: str) -> int:
    statement = select(func.count()).select_from(Organization).where(Organization.id != leaving_out)
    return (await session.execute(statement)).scalar_one()


async def organization_exists(session: AsyncSession, organization_id: str) -> bool:
    found = await session.execute(select(Organization.id).where(Organization.id == organization_id))
    return found.first() is not None


async def find_key(session: AsyncSession, key_hash: str) -> tuple[str, str] | None:
    """(api key id, organization id) of a live key."""
    found = await session.execute(
        select(ApiKey.id, ApiKey.organization_id).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    )
    row = found.first()
    return (row[0], row[1]) if row else None
