"""HTTP for /email-messages: parse, call the service, shape the answer."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import (
    ClockDep,
    OrganizationDep,
    SessionDep,
    SettingsDep,
    clock_of,
    session_of,
    settings_of,
)
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.listing import ListQuery
from postroom.errors import invalid_field
from postroom.messages import resend, schedule, service
from postroom.messages.models import EmailMessage
from postroom.messages.schemas import (
    LIST_FIELDS,
    EmailMessageCreate,
    EmailMessagePatch,
    EmailMessageRead,
    EmailMessageResend,
)
from postroom.settings import Settings

router = APIRouter(prefix="/email-messages", tags=["Email messages"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]


def _read(
    request: Request, message: EmailMessage, resends: dict[str, list[str]] | None = None
) -> EmailMessageRead:
    """`resends`: the ids of the resends of each message that has any (only a sent or failed
    message has: those answered by GET)."""
    url = resource_url(request, "email-messages", message.id)
    return EmailMessageRead.of(message, url, (resends or {}).get(message.id, ()))


def _max_schedule(settings: Settings) -> timedelta:
    return timedelta(days=settings.delivery.max_schedule_days)


_LOCATION = {
    "Location": {
        "description": "URL of the new message",
        "schema": {"type": "string", "format": "uri"},
    }
}


@router.get(
    "",
    operation_id="GetEmailMessageCollection",
    summary="Retrieve email messages",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_email_messages(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[EmailMessageRead]:
    messages, total = await service.list_messages(session, organization_id, query)
    set_pagination_headers(response, query, total)
    resends = await resend.resends_of(session, organization_id, [m.id for m in messages])
    return [_read(request, m, resends) for m in messages]


@router.post(
    "",
    status_code=201,
    operation_id="PostEmailMessage",
    summary="Create an email message",
    responses={
        201: {"headers": _LOCATION},
        **problem_responses(400, 401, 422),
    },
)
async def create_email_message(
    body: EmailMessageCreate,
    request: Request,
    response: Response,
    organization_id: OrganizationDep,
) -> EmailMessageRead:
    settings = settings_of(request)  # not dependencies, on the ingest path (api/deps.py)
    message = await service.create_message(
        session_of(request),
        organization_id,
        body,
        clock_of(request).now(),
        max_attachment_bytes=settings.files.max_message_bytes,
        allowed_domains=settings.server_transport_domains(),
        max_schedule=_max_schedule(settings),
        group=request.app.state.message_group,
    )
    read = _read(request, message)
    response.headers["Location"] = read.links[0].href
    return read


@router.post(
    "/{id}/resend",
    status_code=201,
    operation_id="PostEmailMessageResend",
    summary="Resend an email message",
    description="Creates a new message from a `sent` or `failed` one: the same from, "
    "recipients, subject, text, html, metadata, attachments (the same files: a 422 if one is "
    "gone) and credential, unless the body changes `to`, `cc`, `bcc`, `credentialHash`, "
    "`status` (`outbox`, the default, sends it at once or at `scheduledTime`; `draft` keeps it "
    "to edit) or `scheduledTime`. The copy is checked as `POST /email-messages` checks a body, "
    "and the blocklist applies to it as to any message. Its `_links` gain `resent-from` (the "
    "original); the original's gain one `resends` per copy, oldest first. 409 for a draft or a "
    "message in `outbox`. Postroom's addition to Rebilly's contract.",
    responses={201: {"headers": _LOCATION}, **problem_responses(400, 401, 404, 409, 422)},
)
async def resend_email_message(
    id: str,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
    body: Annotated[EmailMessageResend | None, Body()] = None,
) -> EmailMessageRead:
    message = await resend.resend_message(
        session,
        organization_id,
        id,
        clock.now(),
        body or EmailMessageResend(),
        max_attachment_bytes=settings.files.max_message_bytes,
        allowed_domains=settings.server_transport_domains(),
        max_schedule=_max_schedule(settings),
    )
    read = _read(request, message)
    response.headers["Location"] = read.links[0].href
    return read


@router.get(
    "/{id}",
    operation_id="GetEmailMessage",
    summary="Retrieve an email message",
    responses=problem_responses(401, 404),
)
async def get_email_message(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> EmailMessageRead:
    message = await service.get_message(session, organization_id, id)
    return _read(request, message, await resend.resends_of(session, organization_id, [id]))


@router.patch(
    "/{id}",
    operation_id="PatchEmailMessage",
    summary="Send an email message",
    description='`{"status": "outbox"}` moves a draft to `outbox`, which queues it for '
    "delivery (at its `scheduledTime`, if it has one). Postroom's additions: "
    '`{"status": "draft"}` cancels a message waiting in `outbox` that no worker is '
    "sending (409 if one is, or if it is sent or failed; its attempts are kept), and "
    '`{"scheduledTime": …}` alone moves the time a message waiting in `outbox` (or a draft) '
    "is sent at.",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def send_email_message(
    id: str,
    body: EmailMessagePatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EmailMessageRead:
    now, max_schedule = clock.now(), _max_schedule(settings)
    if body.status == "outbox":
        message = await service.send_draft(
            session,
            organization_id,
            id,
            now,
            max_attachment_bytes=settings.files.max_message_bytes,
            allowed_domains=settings.server_transport_domains(),
            scheduled=body.scheduled_time if body.schedules else schedule.Keep.STORED,
            max_schedule=max_schedule,
        )
    elif body.status == "draft":
        message = await schedule.cancel_message(session, organization_id, id, now)
        if body.schedules:
            message = await schedule.reschedule_message(
                session, organization_id, id, body.scheduled_time, now, max_ahead=max_schedule
            )
    elif body.schedules:
        message = await schedule.reschedule_message(
            session, organization_id, id, body.scheduled_time, now, max_ahead=max_schedule
        )
    else:
        raise invalid_field("status", "Field required")
    return _read(request, message)


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteEmailMessage",
    summary="Delete an email message",
    responses=problem_responses(401, 404, 409),
)
async def delete_email_message(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> Response:
    await service.delete_message(session, organization_id, id)
    return Response(status_code=204)
