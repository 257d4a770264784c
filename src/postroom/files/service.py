"""Rules for files: store an upload (its content shared with every file that has the same),
read, list, rename and tag, delete (refused while a queued message attaches it, the content
removed with its last file), and what messages and delivery need of files."""

import functools
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.db.hooks import after_commit, after_rollback
from postroom.errors import Conflict, FieldProblem, InvalidFields, NotFound, invalid_field
from postroom.files import repository
from postroom.files.blobstore import BlobStorage, BlobStore, Content, StagedBlob
from postroom.files.detect import detect
from postroom.files.models import FileBlob, StoredFile
from postroom.files.object_store import ObjectBlobStore, s3_store
from postroom.files.schemas import FilePatch
from postroom.files.upload import Upload
from postroom.settings import Settings

ID_PREFIX = "file_"
RESOURCE_TYPE = "file"
ATTACHMENT_RESOURCE_TYPE = "attachment"
# Stored beside an `attachment` reference in a message (never shown): the file it resolved to.
RESOLVED_FILE_KEY = "fileId"

InUse = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class FileContent:
    """A file as delivery needs it: what to call it, its type, and where its bytes are."""

    id: str
    name: str
    mime: str
    size: int
    content: Content


def blob_store(settings: Settings) -> BlobStorage:
    """Where file contents are kept: the object store of POSTROOM_FILES__STORAGE_URL, or else
    the blob folder."""
    files = settings.files
    if files.storage_url is None:
        return BlobStore(settings.blob_dir)
    secret = files.s3_secret_access_key
    return _object_store(
        files.storage_url,
        files.s3_endpoint_url,
        files.s3_region,
        files.s3_access_key_id,
        secret.get_secret_value() if secret else None,
        settings.data_dir / "uploads",
    )


@functools.cache
def _object_store(
    storage_url: str,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    staging: Path,
) -> ObjectBlobStore:
    # One client (and its connections) per configuration, for the life of the process.
    store = s3_store(
        storage_url,
        endpoint_url=endpoint_url,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )
    return ObjectBlobStore(store, staging)


def _search_text(file: StoredFile) -> str:
    return " ".join([file.name, file.description, *file.tags]).lower()


def _printable(name: str) -> str:
    # A name the body carried (multipart filename, Content-Disposition) is not validated like
    # a `name` field, so it is made safe for the headers it will appear in.
    return "".join("_" if ord(c) < 32 or ord(c) == 127 else c for c in name)[:255]


async def create_file(
    session: AsyncSession, organization_id: str, upload: Upload, store: BlobStorage, now: datetime
) -> StoredFile:
    now = now.replace(microsecond=0)
    file_id = new_id(ID_PREFIX)
    metadata = upload.metadata
    name = metadata.name or (_printable(upload.filename) if upload.filename else None)
    detected = detect(upload.blob.head, is_text=upload.blob.is_text, name=name)
    blob = await _keep(session, store, upload.blob, now)
    file = StoredFile(
        id=file_id,
        organization_id=organization_id,
        blob_id=blob.id,
        name=name or f"{file_id}.{detected.extension}",
        extension=detected.extension,
        description=metadata.description or "",
        tags=metadata.tags or [],
        mime=detected.mime,
        size=upload.blob.size,
        sha1=upload.blob.sha1,
        source_type=metadata.source_type or "upload",
        created_at=now,
        updated_at=now,
    )
    file.search_text = _search_text(file)
    session.add(file)
    await session.flush()
    return file


async def _keep(
    session: AsyncSession, store: BlobStorage, staged: StagedBlob, now: datetime
) -> FileBlob:
    """The blob of the staged content: the one already stored (the staged copy is dropped), or
    a new one moved into place. Either is locked against removal until this transaction ends."""
    for _ in range(5):
        blob = await repository.blob_by_hash(session, staged.sha256)
        if blob is not None:
            store.discard(staged)
            return blob
        key = store.new_key(staged.sha256)
        blob = await repository.insert_blob(session, key, staged.sha256, staged.size, now)
        if blob is None:
            continue  # stored by a concurrent upload a moment ago: use that one
        after_rollback(session, partial(store.remove, key))
        await store.place(staged, key)
        return blob
    raise RuntimeError(f"could not store blob {staged.sha256}")


async def get_file(session: AsyncSession, organization_id: str, file_id: str) -> StoredFile:
    file = await repository.get(session, organization_id, file_id)
    if file is None:
        raise NotFound(f"file {file_id} not found")
    return file


async def list_files(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[StoredFile], int]:
    return await repository.list_page(session, organization_id, query)


async def update_file(
    session: AsyncSession, organization_id: str, file_id: str, patch: FilePatch, now: datetime
) -> StoredFile:
    """Name, description and tags; the content, and so mime, size and sha1, never change."""
    file = await get_file(session, organization_id, file_id)
    given = patch.model_fields_set
    if patch.name is not None:
        file.name = patch.name
    if "description" in given:
        file.description = patch.description or ""
    if "tags" in given:
        file.tags = patch.tags or []
    if patch.source_type is not None:
        file.source_type = patch.source_type
    file.search_text = _search_text(file)
    file.updated_at = now.replace(microsecond=0)
    await session.flush()
    return file


async def delete_file(
    session: AsyncSession, organization_id: str, file_id: str, store: BlobStorage, *, in_use: InUse
) -> None:
    """Deletes the file unless `in_use` says a queued message attaches it. Its content goes
    with the last file that has it, from disk once the deletion is committed."""
    file = await repository.get(session, organization_id, file_id, lock=True)
    if file is None:
        raise NotFound(f"file {file_id} not found")
    if await in_use():
        raise Conflict(
            f"file {file_id} is attached to a message in outbox; "
            "it can be deleted once that message is sent or failed"
        )
    await repository.delete_file(session, file)
    blob = await repository.lock_blob_if_unused(session, file.blob_id)
    if blob is not None:
        await repository.delete_blob(session, blob)
        after_commit(session, partial(store.remove, blob.id))


async def check_attachments(
    session: AsyncSession,
    organization_id: str,
    attachments: Sequence[tuple[str, str]],
    *,
    max_bytes: int,
) -> list[str]:
    """For a message's attachments, (resourceType, resourceId) each: every one must be a file of
    this organization, or an attachment (a link, files/attachments.py) of it, and together at
    most `max_bytes`. Returns the file id of each, in order; the files cannot be deleted until
    this transaction ends."""
    problems: list[FieldProblem] = []
    links = await repository.attachment_files(
        session, organization_id, {i for t, i in attachments if t == ATTACHMENT_RESOURCE_TYPE}
    )
    file_of: list[str | None] = []
    for index, (resource_type, resource_id) in enumerate(attachments):
        if resource_type == RESOURCE_TYPE:
            file_of.append(resource_id)
        elif resource_type == ATTACHMENT_RESOURCE_TYPE:
            file_of.append(links.get(resource_id))
            if resource_id not in links:
                problems.append(
                    FieldProblem(
                        f"attachments.{index}.resourceId",
                        f"no attachment {resource_id} in this organization",
                    )
                )
        else:
            file_of.append(None)
            problems.append(
                FieldProblem(
                    f"attachments.{index}.resourceType",
                    f"'{resource_type}' is not supported; the supported types are 'file' "
                    "and 'attachment'",
                )
            )
    wanted = {f for f in file_of if f is not None}
    found = {
        f.id: f for f in await repository.get_many(session, organization_id, wanted, share=True)
    }
    # A link's file can be gone only if it was deleted since the link was read (a deleted
    # file takes its links with it).
    problems.extend(
        FieldProblem(f"attachments.{index}.resourceId", f"no file {file_id} in this organization")
        for index, file_id in enumerate(file_of)
        if file_id is not None and file_id not in found
    )
    if problems:
        raise InvalidFields(*problems)
    file_ids = [f for f in file_of if f is not None]
    total = sum(found[file_id].size for file_id in file_ids)
    if total > max_bytes:
        raise invalid_field(
            "attachments",
            f"the attached files add up to {total} bytes; a message may attach {max_bytes}",
        )
    return file_ids


def attached_file_id(reference: Mapping[str, str]) -> str | None:
    """The file a message's stored attachment names: its own id for a file, the file its link
    named when the message was stored or queued for an attachment; None for any other type."""
    if reference.get("resourceType") == RESOURCE_TYPE:
        return reference.get("resourceId")
    if reference.get("resourceType") == ATTACHMENT_RESOURCE_TYPE:
        return reference.get(RESOLVED_FILE_KEY)
    return None


async def unlink_related(
    session: AsyncSession, organization_id: str, related_type: str, related_id: str
) -> None:
    """Removes the attachments (links) to an object that is being deleted; the files stay."""
    await repository.delete_attachments_of(session, organization_id, related_type, related_id)


async def load_for_delivery(
    session: AsyncSession, file_ids: Collection[str], store: BlobStorage
) -> dict[str, FileContent]:
    found = await repository.get_for_delivery(session, file_ids)
    return {
        f.id: FileContent(
            id=f.id, name=f.name, mime=f.mime, size=f.size, content=store.content(f.blob_id)
        )
        for f in found
    }
