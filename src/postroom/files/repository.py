"""SQL for files and their attachments (links), scoped to an organization in every statement,
and for the blobs files share.

Row locks order a delete against an upload or an attachment on PostgreSQL (SQLite runs one
writer at a time, and `FOR UPDATE`/`FOR SHARE` render as nothing there): whoever takes a row
second sees the first one's committed outcome.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey
from postroom.db.listing import counted, fetch_page, filtered, paged
from postroom.files.models import FileAttachment, FileBlob, StoredFile

_table = StoredFile.__table__
_columns: dict[str, ColumnElement[Any]] = dict(_table.c.items())
NEWEST_FIRST = (SortKey("created_at", descending=True),)


def _filtered(organization_id: str, query: ListQuery) -> Select[Any]:
    return filtered(
        select(StoredFile).where(StoredFile.organization_id == organization_id),
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
) -> tuple[list[StoredFile], int]:
    base = _filtered(organization_id, query)
    return await fetch_page(
        session, base, query, _columns, default_sort=NEWEST_FIRST, tiebreak=_table.c.id
    )


async def get(
    session: AsyncSession, organization_id: str, file_id: str, *, lock: bool = False
) -> StoredFile | None:
    stmt = select(StoredFile).where(
        StoredFile.id == file_id, StoredFile.organization_id == organization_id
    )
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def get_many(
    session: AsyncSession, organization_id: str, file_ids: Collection[str], *, share: bool = False
) -> list[StoredFile]:
    """The organization's files among `file_ids`; `share` keeps them from being deleted until
    this transaction ends."""
    if not file_ids:
        return []
    stmt = select(StoredFile).where(
        StoredFile.id.in_(file_ids), StoredFile.organization_id == organization_id
    )
    if share:
        stmt = stmt.with_for_update(read=True)
    return list((await session.scalars(stmt)).all())


async def get_for_delivery(session: AsyncSession, file_ids: Collection[str]) -> list[StoredFile]:
    if not file_ids:
        return []
    return list(
        (await session.scalars(select(StoredFile).where(StoredFile.id.in_(file_ids)))).all()
    )


async def delete_file(session: AsyncSession, file: StoredFile) -> None:
    await session.execute(delete(StoredFile).where(StoredFile.id == file.id))


async def blob_by_hash(session: AsyncSession, sha256: str) -> FileBlob | None:
    """The blob of this content, locked against removal until this transaction ends."""
    return await session.scalar(
        select(FileBlob).where(FileBlob.sha256 == sha256).with_for_update(read=True)
    )


async def insert_blob(
    session: AsyncSession, blob_id: str, sha256: str, size: int, now: datetime
) -> FileBlob | None:
    """A new blob row; None if another transaction has just stored the same content."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return await session.scalar(
        insert(FileBlob)
        .values(id=blob_id, sha256=sha256, size=size, created_at=now)
        .on_conflict_do_nothing(index_elements=[FileBlob.sha256])
        .returning(FileBlob)
    )


async def lock_blob_if_unused(session: AsyncSession, blob_id: str) -> FileBlob | None:
    """The blob, locked, if no file names it any longer; else None."""
    blob = await session.scalar(select(FileBlob).where(FileBlob.id == blob_id).with_for_update())
    if blob is None:
        return None
    users = await session.scalar(
        select(func.count()).select_from(StoredFile).where(StoredFile.blob_id == blob_id)
    )
    return blob if users == 0 else None


async def delete_blob(session: AsyncSession, blob: FileBlob) -> None:
    await session.execute(delete(FileBlob).where(FileBlob.id == blob.id))


_attachments = FileAttachment.__table__
_attachment_columns: dict[str, ColumnElement[Any]] = dict(_attachments.c.items())


async def list_attachments(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[FileAttachment], int]:
    base = filtered(
        select(FileAttachment).where(FileAttachment.organization_id == organization_id),
        query,
        _attachment_columns,
        search=func.lower(_attachments.c.name),
    )
    return await fetch_page(
        session,
        base,
        query,
        _attachment_columns,
        default_sort=NEWEST_FIRST,
        tiebreak=_attachments.c.id,
    )


async def get_attachment(
    session: AsyncSession, organization_id: str, attachment_id: str
) -> FileAttachment | None:
    return await session.scalar(
        select(FileAttachment).where(
            FileAttachment.id == attachment_id, FileAttachment.organization_id == organization_id
        )
    )


async def attachment_files(
    session: AsyncSession, organization_id: str, attachment_ids: Collection[str]
) -> dict[str, str]:
    """The file id of each of the organization's attachments among `attachment_ids`."""
    if not attachment_ids:
        return {}
    rows = await session.execute(
        select(FileAttachment.id, FileAttachment.file_id).where(
            FileAttachment.id.in_(attachment_ids),
            FileAttachment.organization_id == organization_id,
        )
    )
    return {attachment_id: file_id for attachment_id, file_id in rows}


async def delete_attachment(session: AsyncSession, attachment: FileAttachment) -> None:
    await session.execute(delete(FileAttachment).where(FileAttachment.id == attachment.id))


async def delete_attachments_of(
    session: AsyncSession, organization_id: str, related_type: str, related_id: str
) -> None:
    await session.execute(
        delete(FileAttachment).where(
            FileAttachment.organization_id == organization_id,
            FileAttachment.related_type == related_type,
            FileAttachment.related_id == related_id,
        )
    )
