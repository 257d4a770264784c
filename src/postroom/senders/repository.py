"""SQL for email delivery settings, scoped to an organization in every statement but the
token lookup and the operator's (CLI) reads."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey
from postroom.db.driver import driver
from postroom.db.listing import fetch_page, filtered
from postroom.senders.models import EmailDeliverySetting, SenderStatus

_table = EmailDeliverySetting.__table__
_columns: dict[str, ColumnElement[Any]] = dict(_table.c.items())
_search = func.lower(_table.c.from_address + " " + _table.c.name)
OLDEST_FIRST = (SortKey("created_at"),)


async def get(
    session: AsyncSession, organization_id: str, setting_id: str
) -> EmailDeliverySetting | None:
    return await session.scalar(
        select(EmailDeliverySetting).where(
            EmailDeliverySetting.id == setting_id,
            EmailDeliverySetting.organization_id == organization_id,
        )
    )


@dataclass(frozen=True)
class DefaultSetting:
    """What a message takes from its organization's default setting, and what it is checked
    against."""

    id: str
    from_address: str
    name: str
    status: SenderStatus
    credential_id: str | None


_DEFAULT = select(
    _table.c.id, _table.c.from_address, _table.c.name, _table.c.status, _table.c.credential_id
)
# The same statement written for asyncpg (db/driver.py): POST /email-messages runs it.
_DEFAULT_SQL = (
    "SELECT id, from_address, name, status, credential_id FROM email_delivery_settings "
    "WHERE organization_id = $1 AND is_default"
)


async def get_default(session: AsyncSession, organization_id: str) -> DefaultSetting | None:
    prepared = await driver(session)
    if prepared is not None:
        row = await prepared.fetchrow(_DEFAULT_SQL, (organization_id,))
    else:
        found = await session.execute(
            _DEFAULT.where(
                _table.c.organization_id == organization_id, _table.c.is_default.is_(True)
            )
        )
        row = found.first()
    if row is None:
        return None
    return DefaultSetting(row[0], row[1], row[2], SenderStatus(row[3]), row[4])


async def find_by_address(
    session: AsyncSession, organization_id: str, address: str
) -> EmailDeliverySetting | None:
    return await session.scalar(
        select(EmailDeliverySetting).where(
            EmailDeliverySetting.organization_id == organization_id,
            func.lower(EmailDeliverySetting.from_address) == address.lower(),
        )
    )


async def find_by_token_hash(session: AsyncSession, token_hash: str) -> EmailDeliverySetting | None:
    # The one lookup not scoped to an organization: the token is what names the setting.
    return await session.scalar(
        select(EmailDeliverySetting).where(
            EmailDeliverySetting.verification_token_hash == token_hash
        )
    )


async def get_any(session: AsyncSession, setting_id: str) -> EmailDeliverySetting | None:
    """For the operator's CLI, which sees every organization."""
    return await session.get(EmailDeliverySetting, setting_id)


async def list_all(session: AsyncSession, *, pending_only: bool) -> list[EmailDeliverySetting]:
    """For the operator's CLI, which sees every organization."""
    statement = select(EmailDeliverySetting).order_by(
        EmailDeliverySetting.created_at, EmailDeliverySetting.id
    )
    if pending_only:
        statement = statement.where(EmailDeliverySetting.status == "pending")
    return list(await session.scalars(statement))


async def list_page(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[EmailDeliverySetting], int]:
    base = filtered(
        select(EmailDeliverySetting).where(EmailDeliverySetting.organization_id == organization_id),
        query,
        _columns,
        search=_search,
    )
    return await fetch_page(
        session, base, query, _columns, default_sort=OLDEST_FIRST, tiebreak=_table.c.id
    )


async def clear_default(session: AsyncSession, organization_id: str, keep_id: str) -> None:
    """Unsets the organization's default unless it is `keep_id`. Run before the new default is
    written, in the same transaction: nobody sees two defaults, or none in between."""
    await session.execute(
        update(EmailDeliverySetting)
        .where(
            EmailDeliverySetting.organization_id == organization_id,
            EmailDeliverySetting.is_default.is_(True),
            EmailDeliverySetting.id != keep_id,
        )
        .values(is_default=False)
        .execution_options(synchronize_session="fetch")
    )


async def delete_setting(session: AsyncSession, setting: EmailDeliverySetting) -> None:
    await session.execute(delete(EmailDeliverySetting).where(EmailDeliverySetting.id == setting.id))
