"""Rules for attachments, Rebilly's links from a file to another object: link, read, list,
relink, unlink. An email message's attachment may name one (`resourceType: attachment`); it
resolves to the link's file when the message enters `outbox` (files/service.py), so unlinking
later changes nothing for a queued message, whose file stays protected until it is sent."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.errors import NotFound, invalid_field
from postroom.files import repository
from postroom.files.models import FileAttachment, StoredFile
from postroom.files.schemas import RELATED_TYPES, AttachmentWrite
from postroom.messages import service as messages

ID_PREFIX = "att_"


async def _linkable_file(session: AsyncSession, organization_id: str, file_id: str) -> StoredFile:
    # Held with a share lock, so a concurrent delete of the file waits for this link.
    found = await repository.get_many(session, organization_id, [file_id], share=True)
    if not found:
        raise invalid_field("fileId", f"no file {file_id} in this organization")
    return found[0]


async def _check_related(
    session: AsyncSession, organization_id: str, related_type: str, related_id: str
) -> None:
    if related_type not in RELATED_TYPES:
        raise invalid_field(
            "relatedType",
            f"'{related_type}' is not an object postroom has; "
            f"files can be linked to: {', '.join(RELATED_TYPES)}",
        )
    if related_type == "organization":
        if related_id != organization_id:
            raise invalid_field("relatedId", "must be this organization's own id")
        return
    try:
        await messages.get_message(session, organization_id, related_id)
    except NotFound:
        raise invalid_field(
            "relatedId", f"no email message {related_id} in this organization"
        ) from None


async def create_attachment(
    session: AsyncSession, organization_id: str, data: AttachmentWrite, now: datetime
) -> FileAttachment:
    now = now.replace(microsecond=0)
    await _check_related(session, organization_id, data.related_type, data.related_id)
    file = await _linkable_file(session, organization_id, data.file_id)
    attachment = FileAttachment(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        file_id=file.id,
        related_type=data.related_type,
        related_id=data.related_id,
        name=data.name or file.name,
        description=data.description or "",
        created_at=now,
        updated_at=now,
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def get_attachment(
    session: AsyncSession, organization_id: str, attachment_id: str
) -> FileAttachment:
    attachment = await repository.get_attachment(session, organization_id, attachment_id)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found")
    return attachment


async def list_attachments(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[FileAttachment], int]:
    return await repository.list_attachments(session, organization_id, query)


async def replace_attachment(
    session: AsyncSession,
    organization_id: str,
    attachment_id: str,
    data: AttachmentWrite,
    now: datetime,
) -> FileAttachment:
    """PUT: every field as given (a name left out becomes the file's name again)."""
    attachment = await get_attachment(session, organization_id, attachment_id)
    await _check_related(session, organization_id, data.related_type, data.related_id)
    file = await _linkable_file(session, organization_id, data.file_id)
    attachment.file_id = file.id
    attachment.related_type = data.related_type
    attachment.related_id = data.related_id
    attachment.name = data.name or file.name
    attachment.description = data.description or ""
    attachment.updated_at = now.replace(microsecond=0)
    await session.flush()
    return attachment


async def delete_attachment(
    session: AsyncSession, organization_id: str, attachment_id: str
) -> None:
    """Removes the link only; the file stays (Rebilly's SDK deletes it in a second call)."""
    attachment = await get_attachment(session, organization_id, attachment_id)
    await repository.delete_attachment(session, attachment)
