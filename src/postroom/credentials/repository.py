"""SQL for service credentials, scoped to an organization."""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.db.listing import fetch_page, filtered

_table = ServiceCredential.__table__
_columns: dict[str, ColumnElement[Any]] = dict(_table.c.items())
OLDEST_FIRST = (SortKey("id"),)


async def get(
    session: AsyncSession, organization_id: str, credential_id: str, type_: str | None = None
) -> ServiceCredential | None:
    stmt = select(ServiceCredential).where(
        ServiceCredential.id == credential_id, ServiceCredential.organization_id == organization_id
    )
    if type_ is not None:
        stmt = stmt.where(ServiceCredential.type == type_)
    return await session.scalar(stmt)


async def get_many(session: AsyncSession, ids: Collection[str]) -> list[ServiceCredential]:
    if not ids:
        return []
    found = await session.scalars(select(ServiceCredential).where(ServiceCredential.id.in_(ids)))
    return list(found.all())


async def list_page(
    session: AsyncSession, organization_id: str, type_: str, query: ListQuery
) -> tuple[list[ServiceCredential], int]:
    base = filtered(
        select(ServiceCredential).where(
            ServiceCredential.organization_id == organization_id, ServiceCredential.type == type_
        ),
        query,
        _columns,
    )
    return await fetch_page(
        session, base, query, _columns, default_sort=OLDEST_FIRST, tiebreak=_table.c.id
    )


async def apply_changes(
    session: AsyncSession, credential: ServiceCredential, changes: dict[str, Any], now: datetime
) -> ServiceCredential | None:
    """Applies the changes unless the credential is deactivated (final), atomically."""
    values = {**changes, "updated_at": now}
    if "status" in changes:
        values["deactivated_at"] = (
            now if changes["status"] == CredentialStatus.DEACTIVATED else None
        )
    return await session.scalar(
        update(ServiceCredential)
        .where(
            ServiceCredential.id == credential.id,
            ServiceCredential.status != CredentialStatus.DEACTIVATED,
        )
        .values(**values)
        .returning(ServiceCredential),
        execution_options={"populate_existing": True},
    )
