"""HTTP for /webhooks and /tracking/webhooks."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SecretBoxDep, SessionDep, SettingsDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.listing import ListQuery
from postroom.webhooks import service
from postroom.webhooks.events import EventType
from postroom.webhooks.models import Webhook, WebhookTracking
from postroom.webhooks.schemas import (
    LIST_FIELDS,
    TRACKING_LIST_FIELDS,
    EventPayload,
    SecretRotated,
    WebhookCreated,
    WebhookPatch,
    WebhookRead,
    WebhookTrackingRead,
    WebhookWrite,
)

router = APIRouter(prefix="/webhooks", tags=["Webhooks"])
tracking = APIRouter(prefix="/tracking/webhooks", tags=["Webhooks"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]
TrackingQueryDep = Annotated[ListQuery, Depends(collection_query(TRACKING_LIST_FIELDS))]


def _read(request: Request, webhook: Webhook) -> WebhookRead:
    return WebhookRead.of(webhook, resource_url(request, "webhooks", webhook.id))


@router.get(
    "",
    operation_id="GetWebhookCollection",
    summary="Retrieve webhooks",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_webhooks(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[WebhookRead]:
    webhooks, total = await service.list_webhooks(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_read(request, w) for w in webhooks]


@router.post(
    "",
    status_code=201,
    operation_id="PostWebhook",
    summary="Create a webhook",
    description="The answer, and only this one, carries the signing secret (`secret`).",
    responses={
        201: {
            "headers": {
                "Location": {
                    "description": "URL of the new webhook",
                    "schema": {"type": "string", "format": "uri"},
                }
            }
        },
        **problem_responses(400, 401, 409, 422),
    },
)
async def create_webhook(
    body: WebhookWrite,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> WebhookCreated:
    webhook, secret = await service.create_webhook(
        session,
        organization_id,
        body.fields(),
        box,
        settings.destination_policy(),
        clock.now(),
        max_webhooks=settings.webhooks.max_per_organization,
    )
    read = _read(request, webhook)
    response.headers["Location"] = read.links[0].href
    return WebhookCreated(**read.model_dump(by_alias=True), secret=secret)


@router.get(
    "/{id}",
    operation_id="GetWebhook",
    summary="Retrieve a webhook",
    responses=problem_responses(401, 404),
)
async def get_webhook(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> WebhookRead:
    return _read(request, await service.get_webhook(session, organization_id, id))


@router.put(
    "/{id}",
    operation_id="PutWebhook",
    summary="Upsert a webhook",
    response_model=WebhookRead,
    description="Replaces every field of the webhook of this id, or creates it (201, with its "
    "`secret`, shown this once). Setting `status` to `active` again clears the record of its "
    "failures.",
    responses={
        201: {
            "model": WebhookCreated,
            "description": "Webhook created.",
            "headers": {
                "Location": {
                    "description": "URL of the new webhook",
                    "schema": {"type": "string", "format": "uri"},
                }
            },
        },
        **problem_responses(400, 401, 409, 422),
    },
)
async def put_webhook(
    id: Annotated[str, Path(max_length=50, pattern=r"^[@~\-\.\w]+$")],
    body: WebhookWrite,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> Response | WebhookRead:
    webhook, secret = await service.put_webhook(
        session,
        organization_id,
        id,
        body.fields(),
        box,
        settings.destination_policy(),
        clock.now(),
        max_webhooks=settings.webhooks.max_per_organization,
    )
    read = _read(request, webhook)
    if secret is None:
        return read
    created = WebhookCreated(**read.model_dump(by_alias=True), secret=secret)
    return JSONResponse(
        created.model_dump(mode="json", by_alias=True),
        status_code=201,
        headers={"Location": read.links[0].href},
    )


@router.patch(
    "/{id}",
    operation_id="PatchWebhook",
    summary="Change some fields of a webhook",
    responses=problem_responses(400, 401, 404, 422),
)
async def patch_webhook(
    id: str,
    body: WebhookPatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> WebhookRead:
    changes = body.fields(set(body.model_fields_set))
    webhook = await service.update_webhook(
        session, organization_id, id, changes, settings.destination_policy(), clock.now()
    )
    return _read(request, webhook)


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteWebhook",
    summary="Delete a webhook",
    responses=problem_responses(401, 404),
)
async def delete_webhook(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> Response:
    await service.delete_webhook(session, organization_id, id)
    return Response(status_code=204)


@router.post(
    "/{id}/rotate-secret",
    operation_id="PostWebhookSecretRotation",
    summary="Rotate a webhook's signing secret",
    description="postroom's own. The new secret is in this answer only; requests are signed "
    "with the previous one too until `previousSecretUntil`.",
    responses=problem_responses(401, 404),
)
async def rotate_secret(
    id: str,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> SecretRotated:
    overlap = timedelta(hours=settings.webhooks.secret_overlap_hours)
    webhook, secret = await service.rotate_secret(
        session, organization_id, id, box, overlap, clock.now()
    )
    read = _read(request, webhook)
    return SecretRotated(
        **read.model_dump(by_alias=True),
        secret=secret,
        previous_secret_until=webhook.previous_secret_until,
    )


def _tracking_read(request: Request, row: WebhookTracking) -> WebhookTrackingRead:
    return WebhookTrackingRead.of(row, resource_url(request, "tracking", "webhooks", row.id))


@tracking.get(
    "",
    operation_id="GetTrackingWebhookCollection",
    summary="Retrieve webhook tracking (one entry per HTTP attempt)",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_tracking(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: TrackingQueryDep,
) -> list[WebhookTrackingRead]:
    rows, total = await service.list_tracking(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_tracking_read(request, r) for r in rows]


@tracking.get(
    "/{id}",
    operation_id="GetTrackingWebhook",
    summary="Retrieve a webhook tracking entry",
    responses=problem_responses(401, 404),
)
async def get_tracking(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> WebhookTrackingRead:
    return _tracking_read(request, await service.get_tracking(session, organization_id, id))


@tracking.post(
    "/{id}/resend",
    status_code=204,
    operation_id="PostTrackingWebhookResendRequest",
    summary="Schedule a resend of a webhook attempt",
    description="Its delivery is sent again, with the same `webhook-id`.",
    responses=problem_responses(401, 404),
)
async def resend(
    id: str, session: SessionDep, organization_id: OrganizationDep, clock: ClockDep
) -> Response:
    await service.resend(session, organization_id, id, clock.now())
    return Response(status_code=204)


# The event types, documented in the OpenAPI document's `webhooks` section: what postroom sends
# to a webhook's URL (these handlers are never called).
events = APIRouter(tags=["Webhooks"])
_EVENT_DOCS = {
    EventType.SENT: "The message was accepted by the receiving service; it is `sent`.",
    EventType.FAILED: "The message failed for good; it is `failed`.",
    EventType.ATTEMPT_FAILED: "An attempt failed transiently; the message stays in `outbox` "
    "and will be tried again.",
    EventType.OUTCOME_UNKNOWN: "An attempt was cut off after the message data went out: the "
    "service may have accepted it. The message stays in `outbox` (or fails, per "
    "POSTROOM_DELIVERY__UNKNOWN_OUTCOME).",
    EventType.DELIVERED: "The provider reports the recipient's server accepted the message "
    "(`data.event`).",
    EventType.DEFERRED: "The provider reports the recipient's server delayed the message; it "
    "keeps trying (`data.event`).",
    EventType.BOUNCED: "The recipient's server refused the message (`data.event.bounceType`: "
    "hard or soft). A hard bounce puts the address on the blocklist.",
    EventType.COMPLAINED: "The recipient marked the message as spam; the address goes on the "
    "blocklist.",
    EventType.UNSUBSCRIBED: "The recipient unsubscribed through the message's hosted one-click "
    "link (hostedUnsubscribe); the address goes on the blocklist.",
}


def _document_event(event_type: EventType, description: str) -> None:
    async def receive(body: EventPayload) -> None:
        raise NotImplementedError

    events.add_api_route(
        str(event_type),
        receive,
        methods=["POST"],
        operation_id=f"Event_{event_type.name.title().replace('_', '')}",
        summary=str(event_type),
        description=description + " Answer 2xx to acknowledge; anything else is retried "
        "(410 disables the webhook). The same event may arrive more than once: drop "
        "duplicates by the `webhook-id` header.",
        status_code=204,
    )


for _type, _description in _EVENT_DOCS.items():
    _document_event(_type, _description)
