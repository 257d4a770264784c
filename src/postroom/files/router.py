"""HTTP for /files: upload in three body styles, list, get, download, change, delete; and for
/attachments, the links from a file to another object."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SessionDep, SettingsDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.listing import ListQuery
from postroom.errors import PostroomError
from postroom.files import attachments, service
from postroom.files.blobstore import BlobStorage
from postroom.files.models import FileAttachment, StoredFile
from postroom.files.schemas import (
    ATTACHMENT_LIST_FIELDS,
    LIST_FIELDS,
    AttachmentRead,
    AttachmentWrite,
    FileCreateFromInline,
    FilePatch,
    FileRead,
)
from postroom.files.upload import Upload, read_upload
from postroom.messages import service as messages

router = APIRouter(prefix="/files", tags=["Files"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]
attachments_router = APIRouter(prefix="/attachments", tags=["Files"])
AttachmentQueryDep = Annotated[ListQuery, Depends(collection_query(ATTACHMENT_LIST_FIELDS))]
DRAIN_SECONDS = 10


def _store(settings: SettingsDep) -> BlobStorage:
    return service.blob_store(settings)


BlobStoreDep = Annotated[BlobStorage, Depends(_store)]


async def _upload(
    request: Request, store: BlobStoreDep, settings: SettingsDep
) -> AsyncIterator[Upload]:
    # This dependency reads the whole body before any other touches the database (FastAPI
    # solves them in order), so no transaction is open while a slow client sends a large file:
    # on SQLite an open transaction holds the write lock for every writer.
    length = request.headers.get("content-length")
    stream = request.stream()
    try:
        async with store.writer(settings.files.max_file_bytes) as writer:
            upload = await read_upload(
                request.headers.get("content-type", ""),
                int(length) if length and length.isdigit() else None,
                request.headers.get("content-disposition"),
                stream,
                writer,
            )
    except PostroomError:
        await _drain(stream, settings.files.max_file_bytes)
        raise
    # What an Idempotency-Key's fingerprint covers, since the stream cannot be read again.
    request.state.streamed_body_digest = (
        f"{upload.blob.sha256} {upload.filename!r} {upload.metadata!r}"
    )
    try:
        yield upload
    finally:
        store.discard(upload.blob)  # unless it was moved into the store


async def _drain(stream: AsyncIterator[bytes], most: int) -> None:
    """Reads and drops what is left of a refused body (bounded in bytes and time), as a
    lingering close does: a server that closes with unread data in its socket sends a reset,
    which can destroy the error response before the client has read it."""
    drained = 0
    with suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in stream:
                drained += len(chunk)
                if drained > most:
                    break


UploadDep = Annotated[Upload, Depends(_upload, scope="function")]


def _read(request: Request, file: StoredFile) -> FileRead:
    return FileRead.of(file, resource_url(request, "files", file.id))


LOCATION_HEADER = {
    "Location": {
        "description": "URL of the new resource",
        "schema": {"type": "string", "format": "uri"},
    }
}

_UPLOAD_BODY = {
    "required": True,
    "description": "The file: as multipart/form-data (a `file` part, and the other properties "
    "as parts of the same names), as JSON with the content base64-encoded in `file`, or as "
    "the raw body with any other Content-Type (a Content-Disposition filename names it).",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "name": {"type": "string", "maxLength": 255},
                    "description": {"type": "string", "maxLength": 255},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
        "application/json": {"schema": FileCreateFromInline.model_json_schema(by_alias=True)},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.get(
    "",
    operation_id="GetFileCollection",
    summary="Retrieve files",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_files(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[FileRead]:
    files, total = await service.list_files(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_read(request, f) for f in files]


@router.post(
    "",
    status_code=201,
    operation_id="PostFile",
    summary="Upload a file",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        201: {"headers": LOCATION_HEADER},
        **problem_responses(400, 401, 413, 422),
    },
)
async def upload_file(
    upload: UploadDep,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    store: BlobStoreDep,
) -> FileRead:
    file = await service.create_file(session, organization_id, upload, store, clock.now())
    read = _read(request, file)
    response.headers["Location"] = read.links[0].href
    return read


@router.get(
    "/{id}",
    operation_id="GetFile",
    summary="Retrieve a file record",
    responses=problem_responses(401, 404),
)
async def get_file(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> FileRead:
    return _read(request, await service.get_file(session, organization_id, id))


def _content_disposition(name: str) -> str:
    # RFC 6266: a plain ASCII fallback, and the exact name in RFC 5987 form for clients that
    # read it (every current browser), when the name is not plain ASCII.
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


@router.get(
    "/{id}/download",
    operation_id="GetFileDownload",
    summary="Download a file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes, with its detected type as Content-Type.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(401, 404),
    },
)
async def download_file(
    id: str, session: SessionDep, organization_id: OrganizationDep, store: BlobStoreDep
) -> StreamingResponse:
    file = await service.get_file(session, organization_id, id)
    # Opened now, while the row says the blob exists: a delete committed during the download
    # unlinks the name, and the bytes stay readable through this handle.
    chunks = await store.open(file.blob_id)
    return StreamingResponse(
        chunks,
        media_type=file.mime,
        headers={
            "Content-Length": str(file.size),
            "Content-Disposition": _content_disposition(file.name),
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{file.sha1}"',
        },
    )


async def _update(
    id: str,
    body: FilePatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> FileRead:
    file = await service.update_file(session, organization_id, id, body, clock.now())
    return _read(request, file)


router.patch(
    "/{id}",
    operation_id="PatchFile",
    summary="Change a file's name, description or tags",
    responses=problem_responses(400, 401, 404, 422),
)(_update)
router.put(
    "/{id}",
    operation_id="PutFile",
    summary="Update a file",
    description="As PATCH: name, description and tags change; the content never does.",
    responses=problem_responses(400, 401, 404, 422),
)(_update)


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteFile",
    summary="Delete a file",
    description="409 while a message in `outbox` attaches the file.",
    responses=problem_responses(401, 404, 409),
)
async def delete_file(
    id: str, session: SessionDep, organization_id: OrganizationDep, store: BlobStoreDep
) -> Response:
    in_use = partial(messages.attaches_queued_file, session, organization_id, id)
    await service.delete_file(session, organization_id, id, store, in_use=in_use)
    return Response(status_code=204)


def _attachment(request: Request, attachment: FileAttachment) -> AttachmentRead:
    return AttachmentRead.of(
        attachment,
        resource_url(request, "attachments", attachment.id),
        resource_url(request, "files", attachment.file_id),
    )


@attachments_router.get(
    "",
    operation_id="GetAttachmentCollection",
    summary="Retrieve attachments",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_attachments(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: AttachmentQueryDep,
) -> list[AttachmentRead]:
    found, total = await attachments.list_attachments(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_attachment(request, a) for a in found]


async def _create_attachment(
    body: AttachmentWrite,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> AttachmentRead:
    attachment = await attachments.create_attachment(session, organization_id, body, clock.now())
    read = _attachment(request, attachment)
    response.headers["Location"] = read.links[0].href
    return read


attachments_router.post(
    "",
    status_code=201,
    operation_id="PostAttachment",
    summary="Link a file to an object",
    description="The file must be the organization's; `relatedType` is `email-message` or "
    "`organization`. An email message may attach the link as "
    '`{"resourceType": "attachment", "resourceId": "att_…"}`.',
    responses={201: {"headers": LOCATION_HEADER}, **problem_responses(400, 401, 422)},
)(_create_attachment)
# Rebilly's SDK posts a new attachment to `attachments/` (its path with an empty id).
attachments_router.post("/", status_code=201, include_in_schema=False)(_create_attachment)


@attachments_router.get(
    "/{id}",
    operation_id="GetAttachment",
    summary="Retrieve an attachment",
    responses=problem_responses(401, 404),
)
async def get_attachment(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> AttachmentRead:
    return _attachment(request, await attachments.get_attachment(session, organization_id, id))


@attachments_router.put(
    "/{id}",
    operation_id="PutAttachment",
    summary="Update an attachment",
    description="Replaces the link's fields. An existing id only (404 otherwise): postroom "
    "chooses the ids of new attachments. A message already in `outbox` keeps the file the "
    "link named when it was queued.",
    responses=problem_responses(400, 401, 404, 422),
)
async def put_attachment(
    id: str,
    body: AttachmentWrite,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> AttachmentRead:
    attachment = await attachments.replace_attachment(
        session, organization_id, id, body, clock.now()
    )
    return _attachment(request, attachment)


@attachments_router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteAttachment",
    summary="Delete an attachment",
    description="Removes the link; the file stays. A message already in `outbox` that "
    "attaches the link still sends its file (the file itself cannot be deleted until then).",
    responses=problem_responses(401, 404),
)
async def delete_attachment(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> Response:
    await attachments.delete_attachment(session, organization_id, id)
    return Response(status_code=204)
