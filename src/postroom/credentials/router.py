"""HTTP for /service-credentials/{type}."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SecretBoxDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.api.wire import SelfLink, resource_url
from postroom.core.listing import ListQuery
from postroom.credentials import service
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.credentials.schemas import (
    LIST_FIELDS,
    CredentialPatch,
    SmtpAuthNone,
    SmtpAuthRead,
    SmtpAuthUserRead,
    SmtpCredentialCreate,
    SmtpCredentialRead,
)
from postroom.errors import invalid_field

router = APIRouter(prefix="/service-credentials", tags=["Service credentials"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]


def _auth(auth: dict[str, str]) -> SmtpAuthRead:
    if auth["type"] == "none":
        return SmtpAuthNone(type="none")
    return SmtpAuthUserRead.model_validate(auth)


def _read(request: Request, credential: ServiceCredential) -> SmtpCredentialRead:
    settings = credential.settings
    return SmtpCredentialRead(
        id=credential.id,
        hash=credential.id,
        status=CredentialStatus(credential.status),
        deactivation_time=credential.deactivated_at,
        host=settings["host"],
        port=settings["port"],
        encryption=settings["encryption"],
        auth=_auth(settings["auth"]),
        links=[
            SelfLink(
                href=resource_url(request, "service-credentials", credential.type, credential.id)
            )
        ],
    )


@router.get(
    "/{type}",
    operation_id="GetServiceCredentialCollection",
    summary="Retrieve service credentials",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 404, 422)},
)
async def list_service_credentials(
    type: str,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[SmtpCredentialRead]:
    credentials, total = await service.list_credentials(session, organization_id, type, query)
    set_pagination_headers(response, query, total)
    return [_read(request, c) for c in credentials]


@router.post(
    "/{type}",
    status_code=201,
    operation_id="PostServiceCredential",
    summary="Create a service credential",
    description="Secret fields (passwords) are stored encrypted and never returned.",
    responses=problem_responses(400, 401, 404, 422),
)
async def create_service_credential(
    type: str,
    body: SmtpCredentialCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    box: SecretBoxDep,
) -> SmtpCredentialRead:
    service.require_type(type)
    if body.type != type:
        raise invalid_field("type", f"must match the path: {type}")
    credential = await service.create_smtp_credential(
        session, organization_id, body, box, clock.now()
    )
    read = _read(request, credential)
    response.headers["Location"] = read.links[0].href
    return read


@router.get(
    "/{type}/{id}",
    operation_id="GetServiceCredential",
    summary="Retrieve a service credential",
    responses=problem_responses(401, 404),
)
async def get_service_credential(
    type: str, id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> SmtpCredentialRead:
    return _read(request, await service.get_credential(session, organization_id, type, id))


@router.patch(
    "/{type}/{id}",
    operation_id="PatchServiceCredential",
    summary="Update a service credential",
    description="Changes the status; `deactivated` is final.",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def update_service_credential(
    type: str,
    id: str,
    body: CredentialPatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> SmtpCredentialRead:
    if body.type is not None and body.type != type:
        raise invalid_field("type", f"must match the path: {type}")
    credential = await service.change_status(
        session, organization_id, type, id, CredentialStatus(body.status), clock.now()
    )
    return _read(request, credential)
