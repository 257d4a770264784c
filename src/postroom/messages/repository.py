"""SQL for email messages, scoped to an organization in every statement."""

import functools
import random
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey, values_admitted
from postroom.db.driver import Part, RowInsert, driver
from postroom.db.listing import counted, fetch_page, filtered, paged
from postroom.messages.models import EmailMessage, MessageCount, MessageFile, MessageStatus

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


def _count(organization_id: str, query: ListQuery, base: Select[Any]) -> Select[Any]:
    """What counts the rows of `base` (Pagination-Total): with no filter, or one on status alone
    (and no q), the sum of the kept counts of the statuses it admits, which reads a few rows
    however many messages there are; otherwise count(*) through the filter's indexes."""
    statuses = values_admitted(query, "status", MessageStatus)
    if statuses is None:
        return counted(base)
    return kept_count_statement(organization_id, statuses)


def list_statement(organization_id: str, query: ListQuery) -> tuple[Select[Any], Select[Any]]:
    """The page and count statements for a collection query (public so tests can EXPLAIN it)."""
    base = _filtered(organization_id, query)
    page = paged(base, query, _columns, default_sort=NEWEST_FIRST, tiebreak=_table.c.id)
    return page, _count(organization_id, query, base)


async def list_page(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[EmailMessage], int]:
    base = _filtered(organization_id, query)
    return await fetch_page(
        session,
        base,
        query,
        _columns,
        default_sort=NEWEST_FIRST,
        tiebreak=_table.c.id,
        count=_count(organization_id, query, base),
    )


async def get(
    session: AsyncSession, organization_id: str, message_id: str, *, fresh: bool = False
) -> EmailMessage | None:
    """`fresh`: as the database holds it now, even if the session has the row already."""
    return await session.scalar(
        select(EmailMessage).where(
            EmailMessage.id == message_id, EmailMessage.organization_id == organization_id
        ),
        execution_options={"populate_existing": fresh},
    )


async def resends_of(
    session: AsyncSession, organization_id: str, message_ids: Collection[str]
) -> dict[str, list[str]]:
    """The ids of the resends of each of these messages that has any, oldest first."""
    if not message_ids:
        return {}
    rows = await session.execute(
        select(EmailMessage.resent_from_id, EmailMessage.id)
        .where(
            EmailMessage.organization_id == organization_id,
            EmailMessage.resent_from_id.in_(list(message_ids)),
        )
        .order_by(EmailMessage.created_at, EmailMessage.id)
    )
    found: dict[str, list[str]] = {}
    for original, resend in rows:
        if original is not None:
            found.setdefault(original, []).append(resend)
    return found


async def move_draft_to_outbox(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    now: datetime,
    scheduled_at: datetime | None = None,
) -> EmailMessage | None:
    """Atomically draft -> outbox; None if the message is not (or no longer) a draft."""
    return await _change_in_status(
        session,
        organization_id,
        message_id,
        MessageStatus.DRAFT,
        status=MessageStatus.OUTBOX,
        initiated_at=now,
        updated_at=now,
        scheduled_at=scheduled_at,
    )


async def move_outbox_to_draft(
    session: AsyncSession, organization_id: str, message_id: str, now: datetime
) -> EmailMessage | None:
    """Atomically outbox -> draft (a draft has no initiatedTime); None if the message is not
    (or no longer) in outbox. The caller has taken it out of the delivery queue."""
    return await _change_in_status(
        session,
        organization_id,
        message_id,
        MessageStatus.OUTBOX,
        status=MessageStatus.DRAFT,
        initiated_at=None,
        updated_at=now,
    )


async def set_scheduled(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    status: MessageStatus,
    scheduled_at: datetime | None,
    now: datetime,
) -> EmailMessage | None:
    """The message's scheduled time, if it is still in `status`; None if not."""
    return await _change_in_status(
        session, organization_id, message_id, status, scheduled_at=scheduled_at, updated_at=now
    )


async def _change_in_status(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    in_status: MessageStatus,
    **values: Any,
) -> EmailMessage | None:
    return await session.scalar(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.organization_id == organization_id,
            EmailMessage.status == in_status,
        )
        .values(**values)
        .returning(EmailMessage),
        execution_options={"populate_existing": True},
    )


async def delete_unless_in_flight(
    session: AsyncSession, organization_id: str, message_id: str
) -> str | None:
    """Deletes the message unless it is in `outbox`; the status it had, if a row went."""
    status: str | None = await session.scalar(
        delete(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.organization_id == organization_id,
            EmailMessage.status != MessageStatus.OUTBOX,
        )
        .returning(EmailMessage.status)
    )
    return status


_COLUMN_ATTRIBUTES = [attribute.key for attribute in sa_inspect(EmailMessage).column_attrs]
_INSERT = RowInsert(sa_inspect(EmailMessage))


async def insert_messages(session: AsyncSession, messages: Sequence[EmailMessage]) -> None:
    """Writes new messages, given as transient objects, with one INSERT (on PostgreSQL a
    prepared statement of asyncpg's, run once per row in one round trip; elsewhere the ORM's
    bulk path: no unit of work, no identity map); the objects stay transient, as written."""
    rows = [_row(m) for m in messages]
    prepared = await driver(session)
    if prepared is not None:
        args = [_INSERT.args(values, prepared.dialect) for values in rows]
        if len(args) == 1:
            await prepared.execute(_INSERT.sql, args[0])
        else:
            await prepared.executemany(_INSERT.sql, args)
        return
    await session.execute(insert(EmailMessage), rows)


def new_message_rows(messages: Sequence[EmailMessage], dialect: Dialect) -> Part:
    """The INSERT of new messages (transient objects), as part of a statement
    (Driver.execute_together)."""
    return _INSERT.unnest([_row(m) for m in messages], dialect)


def _row(message: EmailMessage) -> dict[str, Any]:
    # Read from the object's dict: a transient object's unset attributes are None.
    return {key: vars(message).get(key) for key in _COLUMN_ATTRIBUTES}


async def link_files(session: AsyncSession, message_id: str, file_ids: Collection[str]) -> None:
    await link_many_files(session, {message_id: file_ids})


_LINK_FILES_SQL = (
    "INSERT INTO email_message_files (message_id, file_id) "
    "SELECT * FROM unnest($1::text[], $2::text[])"
)


async def link_many_files(session: AsyncSession, links: Mapping[str, Collection[str]]) -> None:
    """Each message (by id) to the files it attaches, in one INSERT."""
    part = file_link_rows(links)
    message_ids, file_ids = part.args
    if not message_ids:
        return
    prepared = await driver(session)
    if prepared is not None:
        await prepared.execute(part.sql, part.args)
        return
    rows = [{"message_id": m, "file_id": f} for m, f in zip(message_ids, file_ids, strict=True)]
    await session.execute(insert(MessageFile), rows)


def file_link_rows(links: Mapping[str, Collection[str]]) -> Part:
    """The INSERT of file links, as part of a statement (Driver.execute_together)."""
    pairs = [(message_id, f) for message_id, file_ids in links.items() for f in file_ids]
    return Part(_LINK_FILES_SQL, [[m for m, _ in pairs], [f for _, f in pairs]])


async def replace_file_links(
    session: AsyncSession, message_id: str, file_ids: Collection[str]
) -> None:
    await session.execute(delete(MessageFile).where(MessageFile.message_id == message_id))
    await link_files(session, message_id, file_ids)


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


async def get_many(
    session: AsyncSession, message_ids: Collection[str], *, fresh: bool = False
) -> list[EmailMessage]:
    """`fresh`: rows already in the session are overwritten with what the database holds."""
    if not message_ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: the statement is compiled once, not for each count of ids; and
        # built once, not on every claim.
        stmt = _BY_IDS
        parameters: dict[str, Any] = {"ids": list(message_ids)}
    else:
        stmt = select(EmailMessage).where(EmailMessage.id.in_(message_ids))
        parameters = {}
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    found = await session.scalars(stmt, parameters)
    return list(found.all())


async def rows_to_send(
    session: AsyncSession, message_ids: Collection[str], attributes: Sequence[str]
) -> Sequence[Sequence[Any]]:
    """The messages of these ids as rows of the model's `attributes` (their columns' values),
    with asyncpg's own prepared statement on PostgreSQL."""
    if not message_ids:
        return []
    columns = [_column_of[attribute] for attribute in attributes]
    prepared = await driver(session)
    if prepared is not None:
        return await prepared.fetch(_rows_to_send_sql(tuple(columns)), (list(message_ids),))
    statement = select(*(_table.c[name] for name in columns))
    return (await session.execute(statement.where(_table.c.id.in_(message_ids)))).all()


# Attribute name -> column name (the two differ for `metadata_`).
_column_of = {
    attribute: column.name for attribute, column in sa_inspect(EmailMessage).columns.items()
}


@functools.cache
def _rows_to_send_sql(columns: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(columns)} FROM email_messages WHERE id = ANY($1::varchar[])"  # noqa: S608 (column names, no value)


_ids_parameter = bindparam("ids", type_=postgresql.ARRAY(String))
_BY_IDS = select(EmailMessage).where(EmailMessage.id == any_(_ids_parameter))


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


_RECORD_ANSWER_FIELDS = ("b_id", "b_status", "b_code", "b_body", "b_sent_at", "b_updated_at")
_RECORD_ANSWER_PG = (
    "UPDATE email_messages SET status = $2, response_code = $3, response_body = $4, "
    "sent_at = $5, updated_at = $6 WHERE id = $1 AND status = $7"
)


async def record_answers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Each row: b_id, b_status, b_code, b_body, b_sent_at, b_updated_at."""
    if not rows:
        return
    prepared = await driver(session)
    if prepared is None:
        await session.execute(_record_answer, rows)
        return
    await prepared.executemany(
        _RECORD_ANSWER_PG,
        [(*(row[field] for field in _RECORD_ANSWER_FIELDS), MessageStatus.OUTBOX) for row in rows],
    )


# The kept counts (models.MessageCount). Each change set (one statement; a transaction has one,
# but for a delivery batch recorded row by row) adds its deltas to the rows of ONE shard drawn at
# random. On PostgreSQL an upsert locks its row until commit: with one row per (organization,
# status), every create of an organization would wait for the previous one to commit; with
# COUNT_SHARDS rows, concurrent transactions mostly touch different rows. A statement writes its
# rows in (organization, status, shard) order, so two transactions that need the same rows lock
# them in the same order and cannot deadlock. (SQLite has one writer at a time: no cost there.)
COUNT_SHARDS = 16
_counts = MessageCount.__table__
# A change of counts is in the transaction of every create: on PostgreSQL one prepared upsert of
# asyncpg's (db/driver.py) for any number of rows, in their order; on SQLite (one writer at a
# time) the same upsert, built once, for each row. (A multi-row upsert built for each change was
# compiled anew every time, ~1 ms of CPU, and left reference cycles behind.)
_CHANGE_COUNTS_SQL = (
    "INSERT INTO email_message_counts AS kept (organization_id, status, shard, count) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[]) "
    "ON CONFLICT (organization_id, status, shard) DO UPDATE SET count = kept.count + excluded.count"
)
_sqlite_upsert = sqlite.insert(MessageCount)
_SQLITE_CHANGE_COUNTS = _sqlite_upsert.on_conflict_do_update(
    index_elements=[_counts.c.organization_id, _counts.c.status, _counts.c.shard],
    set_={"count": _counts.c.count + _sqlite_upsert.excluded["count"]},
)


async def change_counts(session: AsyncSession, deltas: Mapping[tuple[str, str], int]) -> None:
    """Adds each delta to the kept count of its (organization_id, status), in one execution."""
    changes = sorted((org, str(status), delta) for (org, status), delta in deltas.items() if delta)
    if not changes:
        return
    prepared = await driver(session)
    if prepared is not None:
        await prepared.execute(_CHANGE_COUNTS_SQL, count_changes(deltas).args)
        return
    shard = random.randrange(COUNT_SHARDS)  # noqa: S311 (spreads rows; nothing secret)
    rows = [
        {"organization_id": org, "status": status, "shard": shard, "count": delta}
        for org, status, delta in changes
    ]
    await session.execute(_SQLITE_CHANGE_COUNTS, rows)


def count_changes(deltas: Mapping[tuple[str, str], int]) -> Part:
    """change_counts's statement (PostgreSQL's), as part of a statement
    (Driver.execute_together)."""
    changes = sorted((org, str(status), delta) for (org, status), delta in deltas.items() if delta)
    shard = random.randrange(COUNT_SHARDS)  # noqa: S311 (spreads rows; nothing secret)
    organizations = [org for org, _, _ in changes]
    statuses = [status for _, status, _ in changes]
    return Part(
        _CHANGE_COUNTS_SQL,
        [organizations, statuses, [shard] * len(changes), [delta for _, _, delta in changes]],
    )


def kept_count_statement(organization_id: str, statuses: Collection[str]) -> Select[Any]:
    """The number of the organization's messages in these statuses, from the kept counts."""
    stmt = select(func.coalesce(func.sum(MessageCount.count), 0).cast(BigInteger)).where(
        MessageCount.organization_id == organization_id
    )
    if set(statuses) != set(MessageStatus):
        stmt = stmt.where(MessageCount.status.in_(sorted(statuses)))
    return stmt


async def recount(session: AsyncSession, organization_id: str | None) -> None:
    """Rebuilds the kept counts (of one organization, or of all) from the rows, into shard 0."""
    if session.get_bind().dialect.name == "postgresql":
        # Exact even while messages are written: a transaction that has moved counts holds a
        # ROW EXCLUSIVE lock on the table until it commits, so this waits for it (its rows are
        # then seen below); one that has not yet moved them waits for this one to commit, and
        # then moves them on top of the rebuilt counts (its rows were not seen below).
        await session.execute(text("LOCK TABLE email_message_counts IN SHARE ROW EXCLUSIVE MODE"))
    rows = select(
        EmailMessage.organization_id, EmailMessage.status, literal(0), func.count()
    ).group_by(EmailMessage.organization_id, EmailMessage.status)
    clear = delete(MessageCount)
    if organization_id is not None:
        rows = rows.where(EmailMessage.organization_id == organization_id)
        clear = clear.where(MessageCount.organization_id == organization_id)
    await session.execute(clear)
    await session.execute(
        insert(MessageCount).from_select(["organization_id", "status", "shard", "count"], rows)
    )
