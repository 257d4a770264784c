"""HTTP for /email-delivery-settings."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.listing import ListQuery
from postroom.senders import service
from postroom.senders.models import EmailDeliverySetting
from postroom.senders.schemas import (
    LIST_FIELDS,
    EmailDeliverySettingCreate,
    EmailDeliverySettingPatch,
    EmailDeliverySettingRead,
)

router = APIRouter(prefix="/email-delivery-settings", tags=["Email delivery settings"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]
USE_DOC = (
    "A message that names no `credentialHash` goes out through the organization's default "
    "setting: its credential, and its `name` as the From display name; the message's `from` "
    "must be the setting's address. This is checked when the message is created and again "
    "when a draft is sent, and the setting's name and credential are pinned on the message "
    "then. Without a default setting, the server-wide default transport is used."
)


async def _reads(
    request: Request,
    session: SessionDep,
    organization_id: str,
    settings: list[EmailDeliverySetting],
) -> list[EmailDeliverySettingRead]:
    providers = await service.providers_of(session, organization_id, settings)
    return [
        EmailDeliverySettingRead.of(
            s, providers[s.id], resource_url(request, "email-delivery-settings", s.id)
        )
        for s in settings
    ]


@router.get(
    "",
    operation_id="GetEmailDeliverySettingCollection",
    summary="Retrieve email delivery settings",
    description=USE_DOC,
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_email_delivery_settings(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[EmailDeliverySettingRead]:
    settings, total = await service.list_settings(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return await _reads(request, session, organization_id, settings)


@router.post(
    "",
    status_code=201,
    operation_id="PostEmailDeliverySetting",
    summary="Create an email delivery setting",
    description="Making it the default (`isDefault: true`) unsets the previous default in the "
    "same transaction. " + USE_DOC,
    responses=problem_responses(400, 401, 409, 422),
)
async def create_email_delivery_setting(
    body: EmailDeliverySettingCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> EmailDeliverySettingRead:
    setting = await service.create_setting(session, organization_id, body, clock.now())
    [read] = await _reads(request, session, organization_id, [setting])
    response.headers["Location"] = read.links[0].href
    return read


@router.get(
    "/{id}",
    operation_id="GetEmailDeliverySetting",
    summary="Retrieve an email delivery setting",
    responses=problem_responses(401, 404),
)
async def get_email_delivery_setting(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> EmailDeliverySettingRead:
    setting = await service.get_setting(session, organization_id, id)
    [read] = await _reads(request, session, organization_id, [setting])
    return read


@router.patch(
    "/{id}",
    operation_id="PatchEmailDeliverySetting",
    summary="Update an email delivery setting",
    description="Changes the fields given. `status` is set by an administrator (postroom sends "
    "no verification mail); a changed `from` is `pending` again unless `status` is given too.",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def update_email_delivery_setting(
    id: str,
    body: EmailDeliverySettingPatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> EmailDeliverySettingRead:
    setting = await service.update_setting(session, organization_id, id, body, clock.now())
    [read] = await _reads(request, session, organization_id, [setting])
    return read


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteEmailDeliverySetting",
    summary="Delete an email delivery setting",
    description="The default setting cannot be deleted (409) until another is the default.",
    responses=problem_responses(401, 404, 409),
)
async def delete_email_delivery_setting(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> Response:
    await service.delete_setting(session, organization_id, id)
    return Response(status_code=204)
