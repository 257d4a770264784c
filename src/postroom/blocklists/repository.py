"""SQL over the blocklists table."""

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.blocklists.models import BlocklistEntry, BlocklistType
from postroom.core.listing import ListQuery, SortKey
from postroom.db.driver import driver
from postroom.db.listing import fetch_page, filtered

_table = cast(Table, BlocklistEntry.__table__)
_columns: dict[str, ColumnElement[Any]] = dict(_table.c.items())


# What every claim asks (delivery/suppression.py), as asyncpg's own statement on PostgreSQL
# (db/driver.py): the IN lists SQLAlchemy renders anew for each claim cost more than the query.
_BLOCKING_PG = (
    "SELECT type, value FROM blocklists WHERE organization_id = $1 "
    "AND ((type = $5 AND value = ANY($2::varchar[])) "
    "OR (type = $6 AND value = ANY($3::varchar[]))) "
    "AND (expiration_time IS NULL OR expiration_time > $4)"
)


async def blocking(
    session: AsyncSession,
    organization_id: str,
    addresses: Collection[str],
    domains: Collection[str],
    now: datetime,
) -> list[tuple[str, str]]:
    """(type, value) of the organization's unexpired entries that name one of these
    (lower-cased) addresses or domains."""
    if not addresses and not domains:
        return []
    prepared = await driver(session)
    if prepared is not None:
        found = await prepared.fetch(
            _BLOCKING_PG,
            (
                organization_id,
                list(addresses),
                list(domains),
                now,
                BlocklistType.EMAIL,
                BlocklistType.EMAIL_DOMAIN,
            ),
        )
        return [(str(t), str(v)) for t, v in found]
    rows = await session.execute(
        select(BlocklistEntry.type, BlocklistEntry.value).where(
            BlocklistEntry.organization_id == organization_id,
            or_(
                and_(
                    BlocklistEntry.type == BlocklistType.EMAIL, BlocklistEntry.value.in_(addresses)
                ),
                and_(
                    BlocklistEntry.type == BlocklistType.EMAIL_DOMAIN,
                    BlocklistEntry.value.in_(domains),
                ),
            ),
            or_(BlocklistEntry.expiration_time.is_(None), BlocklistEntry.expiration_time > now),
        )
    )
    return [(t, v) for t, v in rows.all()]


async def add_if_absent(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Inserts the entry unless the organization already lists (type, value); True if added."""
    dialect = session.get_bind().dialect.name
    insert_row = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_table)
    result = await session.execute(
        insert_row.values(**row)
        .on_conflict_do_nothing(index_elements=["organization_id", "type", "value"])
        .returning(_table.c.id)
    )
    return result.first() is not None


async def renew_expired(
    session: AsyncSession,
    organization_id: str,
    type_: str,
    value: str,
    *,
    now: datetime,
    expiration_time: datetime | None,
    entity_id: str | None,
) -> None:
    """An existing entry that has expired applies again (an entry still in force is left as
    it is: a manual one keeps its own expiry)."""
    await session.execute(
        update(_table)
        .where(
            _table.c.organization_id == organization_id,
            _table.c.type == type_,
            _table.c.value == value,
            _table.c.expiration_time.is_not(None),
            _table.c.expiration_time <= now,
        )
        .values(
            expiration_time=expiration_time,
            entity_id=entity_id,
            source="automated-blocklists",
            updated_time=now,
        )
    )


# --- the API: /blocklists -------------------------------------------------------------------


async def get_entry(
    session: AsyncSession, organization_id: str, entry_id: str
) -> BlocklistEntry | None:
    return await session.scalar(
        select(BlocklistEntry).where(
            BlocklistEntry.id == entry_id, BlocklistEntry.organization_id == organization_id
        )
    )


async def entry_id_taken(session: AsyncSession, entry_id: str) -> bool:
    """By any organization's entry."""
    found = await session.scalar(select(BlocklistEntry.id).where(BlocklistEntry.id == entry_id))
    return found is not None


async def entry_listing(
    session: AsyncSession, organization_id: str, type_: str, value: str
) -> str | None:
    """The id of the organization's entry for (type, value), if there is one."""
    return await session.scalar(
        select(BlocklistEntry.id).where(
            BlocklistEntry.organization_id == organization_id,
            BlocklistEntry.type == type_,
            BlocklistEntry.value == value,
        )
    )


async def list_entries(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[BlocklistEntry], int]:
    base = filtered(
        select(BlocklistEntry).where(BlocklistEntry.organization_id == organization_id),
        query,
        _columns,
        search=func.lower(BlocklistEntry.value),
    )
    return await fetch_page(
        session,
        base,
        query,
        _columns,
        default_sort=(SortKey("created_time", descending=True),),
        tiebreak=_table.c.id,
    )
