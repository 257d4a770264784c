"""The messages: the list (the API's search and filters), one message as its recipient saw
it, its source and attachments, and the actions the API offers on it."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from postroom.blocklists import service as blocklists
from postroom.blocklists.models import BlocklistType
from postroom.core.listing import (
    Condition,
    ListQuery,
    ListQueryError,
    Term,
    parse_filter,
    parse_sort,
)
from postroom.dashboard.security import (
    PREFIX,
    CheckedFormDep,
    DashboardRoute,
    SignedInDep,
    preview_csp,
)
from postroom.dashboard.templating import render
from postroom.delivery import service as delivery
from postroom.errors import NotFound, invalid_field
from postroom.events import service as events
from postroom.files import service as files
from postroom.messages import resend, schedule
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage, MessageStatus
from postroom.messages.schemas import LIST_FIELDS, EmailMessageResend
from postroom.settings import Settings

router = APIRouter(route_class=DashboardRoute)
PAGE_SIZE = 25
# The list's orders, as the API's `sort` spells them.
SORTS = {
    "newest": ("Newest first", ["-createdTime", "-id"]),
    "oldest": ("Oldest first", ["createdTime", "id"]),
    "updated": ("Recently changed", ["-updatedTime", "-id"]),
}


def _filter(status: str, credential: str, since: str, until: str) -> str | None:
    """The API's `filter` grammar for the form's fields (the API's parser then checks them)."""
    parts = []
    if status:
        parts.append(f"status:{status}")
    if credential:
        parts.append(f"credentialHash:{credential}")
    if since or until:
        low = f"{since}T00:00:00Z" if since else ""
        high = f"{until}T23:59:59Z" if until else ""
        parts.append(f"createdTime:{low}..{high}")
    return ";".join(parts) or None


@router.get("/messages")
async def list_messages(
    request: Request,
    signed_in: SignedInDep,
    q: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    credential: Annotated[str, Query(max_length=40)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    sort: Annotated[str, Query(max_length=10)] = "newest",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    if sort not in SORTS:
        raise invalid_field("sort", f"must be one of {', '.join(SORTS)}")
    try:
        query = ListQuery(
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            sort=parse_sort(SORTS[sort][1], LIST_FIELDS),
            conditions=parse_filter(_filter(status, credential, since, until), LIST_FIELDS),
            search=q.strip() or None,
        )
    except ListQueryError as error:
        raise invalid_field(error.field, error.message) from None
    found, total = await messages.list_messages(
        request.state.session, signed_in.organization_id, query
    )
    form = {
        "q": q,
        "status": status,
        "credential": credential,
        "since": since,
        "until": until,
        "sort": sort,
    }
    pages = max(1, -(-total // PAGE_SIZE))
    return render(
        request,
        "messages.html",
        {
            "signed_in": signed_in,
            "messages": found,
            "total": total,
            "form": form,
            "statuses": list(MessageStatus),
            "sorts": {name: label for name, (label, _) in SORTS.items()},
            "page": page,
            "pages": pages,
            "previous": f"?{urlencode({**form, 'page': page - 1})}" if page > 1 else None,
            "next": f"?{urlencode({**form, 'page': page + 1})}" if page < pages else None,
        },
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    summary: str
    detail: str | None = None


async def _timeline(
    request: Request, organization_id: str, message: EmailMessage
) -> list[TimelineEntry]:
    session = request.state.session
    entries = [TimelineEntry(message.created_at, "created", f"created as {MessageStatus.DRAFT}")]
    if message.initiated_at is not None:
        entries.append(TimelineEntry(message.initiated_at, "queued", "sent to the outbox"))
    for attempt in await delivery.list_attempts(session, organization_id, message.id):
        summary = (
            f"attempt {attempt.number} via {attempt.transport}: {attempt.outcome or 'in flight'}"
        )
        if attempt.response_code is not None:
            summary += f" ({attempt.response_code})"
        entries.append(TimelineEntry(attempt.started_at, "attempt", summary, attempt.response_body))
    for event in await events.list_events(session, organization_id, message.id):
        summary = f"{event.type} from {event.source}"
        if event.recipient:
            summary += f" for {event.recipient}"
        if event.bounce_type:
            summary += f" ({event.bounce_type} bounce)"
        entries.append(TimelineEntry(event.occurred_time, "event", summary, event.diagnostic))
    return sorted(entries, key=lambda e: e.at)


async def _attachments(
    request: Request, organization_id: str, message: EmailMessage
) -> list[dict[str, object]]:
    shown: list[dict[str, object]] = []
    for reference in message.attachments:
        file_id = files.attached_file_id(reference)
        if file_id is None:
            continue
        try:
            file = await files.get_file(request.state.session, organization_id, file_id)
        except NotFound:  # deleted since the message was sent
            shown.append({"id": file_id, "name": file_id, "size": None, "gone": True})
            continue
        shown.append({"id": file.id, "name": file.name, "size": file.size, "mime": file.mime})
    return shown


async def _blocklisted(
    request: Request, organization_id: str, message: EmailMessage
) -> dict[str, str | None]:
    """Each recipient, and the id of its own email entry on the blocklist (None if unlisted;
    an address blocked through its domain has no entry of its own to remove here)."""
    session = request.state.session
    now = request.app.state.clock.now()
    recipients = [*message.to_addresses, *message.cc_addresses, *message.bcc_addresses]
    blocked = await blocklists.blocked(session, organization_id, recipients, now)
    listed: dict[str, str | None] = {}
    for address in recipients:
        listed[address] = None
        if address in blocked:
            listed[address] = await _entry_id(request, organization_id, address) or "domain"
    return listed


async def _entry_id(request: Request, organization_id: str, address: str) -> str | None:
    value = blocklists.EntryFields(BlocklistType.EMAIL, address, None).canonical().value
    query = ListQuery(
        limit=1,
        conditions=(
            Condition(
                "type", allowed=(Term(BlocklistType.EMAIL.value, BlocklistType.EMAIL.value),)
            ),
            Condition("value", allowed=(Term(value, value),)),
        ),
    )
    found, _ = await blocklists.list_entries(request.state.session, organization_id, query)
    return found[0].id if found else None


@router.get("/messages/{id}")
async def show_message(
    id: str,
    request: Request,
    signed_in: SignedInDep,
    images: Annotated[bool, Query()] = False,
) -> Response:
    organization_id = signed_in.organization_id
    message = await messages.get_message(request.state.session, organization_id, id)
    return render(
        request,
        "message.html",
        {
            "signed_in": signed_in,
            "message": message,
            "images": images,
            "timeline": await _timeline(request, organization_id, message),
            "attachments": await _attachments(request, organization_id, message),
            "recipients": await _blocklisted(request, organization_id, message),
            "resends": (
                await resend.resends_of(request.state.session, organization_id, [message.id])
            ).get(message.id, []),
        },
    )


@router.get("/messages/{id}/preview")
async def preview_message(
    id: str,
    request: Request,
    signed_in: SignedInDep,
    images: Annotated[bool, Query()] = False,
) -> Response:
    message = await messages.get_message(request.state.session, signed_in.organization_id, id)
    # <base target=_blank>: a link leaves the sandbox for a new tab instead of navigating the
    # frame (the sandbox allows only that popup).
    body = '<!doctype html><meta charset="utf-8"><base target="_blank">' + message.html
    return Response(
        body,
        media_type="text/html",
        headers={
            "Content-Security-Policy": preview_csp(images),
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
        },
    )


def _disposition(name: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f'attachment; filename="{fallback}"'


@router.get("/messages/{id}/source.eml")
async def download_source(id: str, request: Request, signed_in: SignedInDep) -> Response:
    settings: Settings = request.app.state.settings
    raw = await delivery.raw_source(
        request.state.session, signed_in.organization_id, id, files.blob_store(settings)
    )
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": _disposition(f"{id}.eml")},
    )


@router.get("/messages/{id}/attachments/{file_id}")
async def download_attachment(
    id: str, file_id: str, request: Request, signed_in: SignedInDep
) -> Response:
    session, organization_id = request.state.session, signed_in.organization_id
    message = await messages.get_message(session, organization_id, id)
    attached = {files.attached_file_id(a) for a in message.attachments}
    if file_id not in attached:
        raise invalid_field("file_id", "is not attached to this message")
    file = await files.get_file(session, organization_id, file_id)
    store = files.blob_store(request.app.state.settings)
    chunks = await store.open(file.blob_id)
    return StreamingResponse(
        chunks,
        media_type=file.mime,
        headers={"Content-Disposition": _disposition(file.name), "Content-Length": str(file.size)},
    )


def _back_to(message_id: str) -> Response:
    return RedirectResponse(f"{PREFIX}/messages/{message_id}", status_code=303)


@router.post("/messages/{id}/send")
async def send_draft(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    settings: Settings = request.app.state.settings
    await messages.send_draft(
        request.state.session,
        signed_in.organization_id,
        id,
        request.app.state.clock.now(),
        max_attachment_bytes=settings.files.max_message_bytes,
        allowed_domains=settings.server_transport_domains(),
        scheduled=schedule.Keep.STORED,
        max_schedule=timedelta(days=settings.delivery.max_schedule_days),
    )
    return _back_to(id)


@router.post("/messages/{id}/resend")
async def resend_message(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    """A copy of a sent or failed message, queued at once; the browser goes to the copy."""
    settings: Settings = request.app.state.settings
    copy = await resend.resend_message(
        request.state.session,
        signed_in.organization_id,
        id,
        request.app.state.clock.now(),
        EmailMessageResend(),
        max_attachment_bytes=settings.files.max_message_bytes,
        allowed_domains=settings.server_transport_domains(),
        max_schedule=timedelta(days=settings.delivery.max_schedule_days),
    )
    return _back_to(copy.id)


@router.post("/messages/{id}/cancel")
async def cancel_message(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    await schedule.cancel_message(
        request.state.session, signed_in.organization_id, id, request.app.state.clock.now()
    )
    return _back_to(id)


@router.post("/messages/{id}/delete")
async def delete_message(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    await messages.delete_message(request.state.session, signed_in.organization_id, id)
    return RedirectResponse(f"{PREFIX}/messages", status_code=303)


@router.post("/messages/{id}/blocklist")
async def blocklist_recipient(
    id: str,
    request: Request,
    signed_in: CheckedFormDep,
    address: Annotated[str, Form(max_length=254)],
) -> Response:
    session, organization_id = request.state.session, signed_in.organization_id
    message = await messages.get_message(session, organization_id, id)
    if address not in {*message.to_addresses, *message.cc_addresses, *message.bcc_addresses}:
        raise invalid_field("address", "is not a recipient of this message")
    fields = blocklists.EntryFields(BlocklistType.EMAIL, address, None)
    await blocklists.create_entry(session, organization_id, fields, request.app.state.clock.now())
    return _back_to(id)


@router.post("/messages/{id}/unblocklist")
async def unblocklist_recipient(
    id: str,
    request: Request,
    signed_in: CheckedFormDep,
    entry: Annotated[str, Form(max_length=40)],
) -> Response:
    await messages.get_message(request.state.session, signed_in.organization_id, id)
    await blocklists.delete_entry(request.state.session, signed_in.organization_id, entry)
    return _back_to(id)
