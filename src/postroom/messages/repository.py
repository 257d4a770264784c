"""SQL for email messages, scoped to an organization in every statement."""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey
from postroom.db.listing import counted, fetch_page, filtered, paged
from postroom.messages.models import EmailMessage, MessageFile, MessageStatus

_table = cast(Table, EmailMessage.__table__)
_columns: dict[str, ColumnElement[Any]] = dict(_table.c.items())
NEWEST_FIRST = (SortKey("created_at", descending=True),)


def _filtered(organization_id: str, query: ListQuery) -> Select[Any]:
    return filtered(
        select(EmailMessage).where(EmailMessage.organization_id == organization_id),
        query,
        _columns,
        search=_table.c.search_text,
    )


def list_statement(organization_id: str, query: ListQuery) -> tuple[Select[Any], Select[Any]]:
    """The page and count statements for a collection query (public so tests can EXPLAIN it)."""
    base = _filtered(organization_id, query)
    page = paged(base, query, _columns, default_sort=NEWEST_FIRST, tiebreak=_table.c.id)
    return page, counted(base)


async def list_page(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[EmailMessage], int]:
    base = _filtered(organization_id, query)
    return await fetch_page(
        session, base, query, _columns, default_sort=NEWEST_FIRST, tiebreak=_table.c.id
    )


async def get(session: AsyncSession, organization_id: str, message_id: str) -> EmailMessage | None:
    return await session.scalar(
        select(EmailMessage).where(
            EmailMessage.id == message_id, EmailMessage.organization_id == organization_id
        )
    )


async def move_draft_to_outbox(
    session: AsyncSession, organization_id: str, message_id: str, now: datetime
) -> EmailMessage | None:
    """Atomically draft -> outbox; None if the message is not (or no longer) a draft."""
    return await session.scalar(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.organization_id == organization_id,
            EmailMessage.status == MessageStatus.DRAFT,
        )
        .values(status=MessageStatus.OUTBOX, initiated_at=now, updated_at=now)
        .returning(EmailMessage),
        execution_options={"populate_existing": True},
    )


async def delete_unless_in_flight(
    session: AsyncSession, organization_id: str, message_id: str
) -> bool:
    """Deletes the message unless it is in `outbox`; whether a row went."""
    result = await session.execute(
        delete(EmailMessage).where(
            EmailMessage.id == message_id,
            EmailMessage.organization_id == organization_id,
            EmailMessage.status != MessageStatus.OUTBOX,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


_COLUMN_ATTRIBUTES = [attribute.key for attribute in sa_inspect(EmailMessage).column_attrs]


async def insert_message(session: AsyncSession, message: EmailMessage) -> None:
    """Writes a new message, given as a transient object, with one INSERT (the ORM's bulk path:
    no unit of work, no identity map); the object stays transient, as written."""
    values = {key: getattr(message, key) for key in _COLUMN_ATTRIBUTES}
    await session.execute(insert(EmailMessage), [values])


async def link_files(session: AsyncSession, message_id: str, file_ids: Collection[str]) -> None:
    if file_ids:
        await session.execute(
            insert(MessageFile), [{"message_id": message_id, "file_id": f} for f in file_ids]
        )


async def queued_with_file(session: AsyncSession, organization_id: str, file_id: str) -> bool:
    """Whether a message in `outbox` attaches the file."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    MessageFile.file_id == file_id,
                    MessageFile.message_id == EmailMessage.id,
                    EmailMessage.organization_id == organization_id,
                    EmailMessage.status == MessageStatus.OUTBOX,
                )
            )
        )
    )


async def get_many(session: AsyncSession, message_ids: Collection[str]) -> list[EmailMessage]:
    if not message_ids:
        return []
    found = await session.scalars(select(EmailMessage).where(EmailMessage.id.in_(message_ids)))
    return list(found.all())


# Only a message still in `outbox` takes a delivery answer (the queue row that was its lease is
# what the caller checked; this keeps a settled message settled whatever happens).
_record_answer = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"), _table.c.status == MessageStatus.OUTBOX)
    .values(
        status=bindparam("b_status"),
        response_code=bindparam("b_code"),
        response_body=bindparam("b_body"),
        sent_at=bindparam("b_sent_at"),
        updated_at=bindparam("b_updated_at"),
    )
)


async def record_answers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Each row: b_id, b_status, b_code, b_body, b_sent_at, b_updated_at."""
    if rows:
        await session.execute(_record_answer, rows)
