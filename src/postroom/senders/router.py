"""HTTP for /email-delivery-settings."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SessionDep, SettingsDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.listing import ListQuery
from postroom.errors import NotFound
from postroom.senders import service, verification
from postroom.senders.models import EmailDeliverySetting
from postroom.senders.schemas import (
    LIST_FIELDS,
    EmailDeliverySettingCreate,
    EmailDeliverySettingPatch,
    EmailDeliverySettingRead,
)
from postroom.senders.service import Pending

router = APIRouter(prefix="/email-delivery-settings", tags=["Email delivery settings"])
# Reached by the link in the verification mail: the token is the credential, no API key.
verifications = APIRouter(prefix=verification.PATH, tags=["Email delivery settings"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]
USE_DOC = (
    "A message that names no `credentialHash` goes out through the organization's default "
    "setting: its credential, and its `name` as the From display name; the message's `from` "
    "must be the setting's address. This is checked when the message is created and again "
    "when a draft is sent, and the setting's name and credential are pinned on the message "
    "then. Without a default setting, the server-wide transport is used, for a `from` that "
    "is the address of a verified setting or in a domain the operator allows."
)
VERIFY_DOC = (
    "A new setting, and one whose `from` changes, is `pending`: postroom mails a one-time link "
    "to the address (through the server-wide transport), and following it verifies the setting."
)


async def _mailed(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    organization_id: str,
    pending: Pending,
) -> EmailDeliverySettingRead:
    """The setting as answered, after its new token (if one was issued) is mailed."""
    await verification.mail_token(
        session,
        pending,
        sender=settings.senders.verification_from,
        base_url=settings.senders.public_url or str(request.base_url),
        now=clock.now(),
    )
    [read] = await _reads(request, session, organization_id, [pending.setting])
    return read


def _token_ttl(settings: SettingsDep) -> timedelta:
    return timedelta(hours=settings.senders.verification_token_hours)


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
    "same transaction. " + VERIFY_DOC + " " + USE_DOC,
    responses=problem_responses(400, 401, 409, 422),
)
async def create_email_delivery_setting(
    body: EmailDeliverySettingCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EmailDeliverySettingRead:
    pending = await service.create_setting(
        session, organization_id, body, clock.now(), token_ttl=_token_ttl(settings)
    )
    read = await _mailed(request, session, settings, clock, organization_id, pending)
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
    description="Changes the fields given. `status` is read-only; a changed `from` is `pending` "
    "again and a new link is mailed to it.",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def update_email_delivery_setting(
    id: str,
    body: EmailDeliverySettingPatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EmailDeliverySettingRead:
    pending = await service.update_setting(
        session, organization_id, id, body, clock.now(), token_ttl=_token_ttl(settings)
    )
    return await _mailed(request, session, settings, clock, organization_id, pending)


@router.post(
    "/{id}/resend-email-verification",
    operation_id="PostResendEmailDeliverySettingVerification",
    summary="Resend email delivery setting verification email",
    description="Mails a new verification link to a `pending` setting's address; the earlier "
    "link stops working. A verified setting is a 409.",
    responses=problem_responses(401, 404, 409),
)
async def resend_email_delivery_setting_verification(
    id: str,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> EmailDeliverySettingRead:
    pending = await service.renew_token(
        session, organization_id, id, clock.now(), token_ttl=_token_ttl(settings)
    )
    return await _mailed(request, session, settings, clock, organization_id, pending)


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


@verifications.put(
    "/{token}",
    operation_id="PutEmailDeliverySettingsVerification",
    summary="Verify an email delivery setting",
    description="The link mailed to a setting's address: needs no API key, works once, and "
    "expires (POSTROOM_SENDERS__VERIFICATION_TOKEN_HOURS). An unknown, used or expired token is "
    "a 404.",
    responses=problem_responses(404),
)
async def verify_email_delivery_setting(
    token: str, request: Request, session: SessionDep, clock: ClockDep
) -> EmailDeliverySettingRead:
    setting = await service.verify_token(session, token, clock.now())
    [read] = await _reads(request, session, setting.organization_id, [setting])
    return read


# The same link opened in a browser: a page with a button (opening it verifies nothing, since
# mail scanners open links), and the button's POST.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not valid (used, expired or replaced)", "content": {"text/html": {}}}
}


@verifications.get(
    "/{token}",
    operation_id="GetEmailDeliverySettingsVerificationPage",
    summary="The page behind the mailed verification link",
    description="HTML with a Confirm button (which POSTs here); opening it verifies nothing.",
    response_class=HTMLResponse,
    responses=_PAGE_RESPONSES,
)
async def verification_page(token: str, session: SessionDep, clock: ClockDep) -> HTMLResponse:
    setting = await service.find_by_token(session, token, clock.now())
    address = setting.from_address if setting else None
    return HTMLResponse(
        verification.confirm_page(address, confirmed=False),
        status_code=200 if setting else 404,
        headers=_PAGE_HEADERS,
    )


@verifications.post(
    "/{token}",
    operation_id="PostEmailDeliverySettingsVerificationPage",
    summary="Confirm from the verification page",
    description="The page's Confirm button: verifies as the PUT does, and answers with HTML.",
    response_class=HTMLResponse,
    responses=_PAGE_RESPONSES,
)
async def verification_page_confirm(
    token: str, session: SessionDep, clock: ClockDep
) -> HTMLResponse:
    try:
        address: str | None = (await service.verify_token(session, token, clock.now())).from_address
    except NotFound:
        address = None
    return HTMLResponse(
        verification.confirm_page(address, confirmed=address is not None),
        status_code=200 if address else 404,
        headers=_PAGE_HEADERS,
    )
