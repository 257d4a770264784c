"""SQL for organizations and API keys."""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth.models import ApiKey, DashboardSession, Organization
from postroom.core.listing import ListQuery, SortKey
from postroom.db.listing import fetch_page, filtered

_keys = ApiKey.__table__
_key_columns: dict[str, ColumnElement[Any]] = dict(_keys.c.items())
_OLDEST_FIRST = (SortKey("id"),)


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


async def get_organization(session: AsyncSession, organization_id: str) -> Organization | None:
    return await session.get(Organization, organization_id)


def _live_keys(organization_id: str) -> Select[ApiKey]:
    return select(ApiKey).where(
        ApiKey.organization_id == organization_id, ApiKey.revoked_at.is_(None)
    )


async def get_live_key(session: AsyncSession, organization_id: str, key_id: str) -> ApiKey | None:
    return await session.scalar(_live_keys(organization_id).where(ApiKey.id == key_id))


async def list_live_keys(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[ApiKey], int]:
    base = filtered(_live_keys(organization_id), query, _key_columns)
    return await fetch_page(
        session, base, query, _key_columns, default_sort=_OLDEST_FIRST, tiebreak=_keys.c.id
    )


async def live_key_count(session: AsyncSession, organization_id: str) -> int:
    """Counted with the organization's row locked on PostgreSQL, so that two revocations at
    once cannot both leave the other key as the last one and revoke it too."""
    await session.execute(
        select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )
    statement = select(func.count()).select_from(_live_keys(organization_id).subquery())
    return (await session.execute(statement)).scalar_one()


async def revoke_key(session: AsyncSession, key: ApiKey, now: datetime) -> None:
    await session.execute(
        update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=now, updated_at=now)
    )


async def list_organizations(session: AsyncSession, *, leaving_out: str) -> list[Organization]:
    found = await session.scalars(
        select(Organization).where(Organization.id != leaving_out).order_by(Organization.id)
    )
    return list(found.all())


async def all_live_keys(session: AsyncSession, organization_id: str) -> list[ApiKey]:
    return list((await session.scalars(_live_keys(organization_id).order_by(ApiKey.id))).all())


async def add_session(session: AsyncSession, row: DashboardSession) -> None:
    session.add(row)
    await session.flush()


async def find_session(
    session: AsyncSession, token_hash: str, now: datetime
) -> DashboardSession | None:
    """An unexpired dashboard session whose API key is still live."""
    return await session.scalar(
        select(DashboardSession)
        .join(ApiKey, ApiKey.id == DashboardSession.api_key_id)
        .where(
            DashboardSession.token_hash == token_hash,
            DashboardSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    )


async def delete_sessions(
    session: AsyncSession, *, token_hash: str | None = None, expired_by: datetime | None = None
) -> None:
    statement = delete(DashboardSession)
    if token_hash is not None:
        statement = statement.where(DashboardSession.token_hash == token_hash)
    if expired_by is not None:
        statement = statement.where(DashboardSession.expires_at <= expired_by)
    await session.execute(statement)
