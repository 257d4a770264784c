"""HTTP for /service-credentials/{type}."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SecretBoxDep, SessionDep, SettingsDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.core.crypto import SecretBox
from postroom.core.listing import ListQuery
from postroom.credentials import service
from postroom.credentials.models import ServiceCredential
from postroom.credentials.schemas import (
    LIST_FIELDS,
    CredentialCreate,
    CredentialPatch,
    CredentialRead,
    SmtpCredentialCreate,
    WebhookCredentialCreate,
    read_model,
)
from postroom.errors import invalid_field
from postroom.events import inbound

TYPES_DOC = (
    "Types: `smtp`, `sendgrid`, `mailgun`, `postmark`, `aws-ses`, and postroom's own "
    "`simulator` (sends nothing; answers by recipient address: `delivered@`, `softfail@`, "
    "`hardfail@`, `timeout@`, `ratelimited@`; see the README); and `webhook` (`host`, `auth` "
    "none/basic/digest: HTTP auth for webhooks named by their `credentialHash`)."
)


class _TypedBodyRequest(Request):
    async def json(self) -> Any:
        # The contract's backward-compatible form: a body without `type` takes the path's.
        body = await super().json()
        if isinstance(body, dict) and "type" not in body:
            body = {**body, "type": self.path_params.get("type")}
        return body


class _CredentialRoute(APIRoute):
    """Answers 404 for a type postroom does not know before the body is looked at; lets a body
    leave `type` out; and names invalid fields by their place in the body, without the type."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def typed(request: Request) -> Response:
            type_ = request.path_params.get("type")
            if type_ is not None:
                service.require_type(type_)
            try:
                return await handler(_TypedBodyRequest(request.scope, request.receive))
            except RequestValidationError as error:
                raise RequestValidationError(
                    [_untagged(e, type_) for e in error.errors()], body=error.body
                ) from None

        return typed


def _untagged(error: Any, type_: str | None) -> Any:
    location = tuple(error.get("loc", ()))
    if location[:2] == ("body", type_):
        return {**error, "loc": ("body", *location[2:])}
    return error


router = APIRouter(
    prefix="/service-credentials", tags=["Service credentials"], route_class=_CredentialRoute
)
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]


def _read(request: Request, credential: ServiceCredential) -> CredentialRead:
    href = resource_url(request, "service-credentials", credential.type, credential.id)
    box: SecretBox = request.app.state.secret_box
    tag = box.tag(inbound.TAG_PURPOSE, credential.id)
    return read_model(
        credential, href, resource_url(request, inbound.events_path(credential.id, tag))
    )


@router.get(
    "/{type}",
    operation_id="GetServiceCredentialCollection",
    summary="Retrieve service credentials",
    description=TYPES_DOC,
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 404, 422)},
)
async def list_service_credentials(
    type: str,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[CredentialRead]:
    credentials, total = await service.list_credentials(session, organization_id, type, query)
    set_pagination_headers(response, query, total)
    return [_read(request, c) for c in credentials]


@router.post(
    "/{type}",
    status_code=201,
    operation_id="PostServiceCredential",
    summary="Create a service credential",
    description="Secret fields (passwords, API keys, tokens, AWS secret keys) are stored "
    "encrypted and never returned. " + TYPES_DOC,
    responses=problem_responses(400, 401, 404, 422),
)
async def create_service_credential(
    type: str,
    body: CredentialCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    box: SecretBoxDep,
    settings: SettingsDep,
) -> CredentialRead:
    if body.type != type:
        raise invalid_field("type", f"must match the path: {type}")
    if isinstance(body, SmtpCredentialCreate | WebhookCredentialCreate):
        service.check_destination(body.host, settings.destination_policy())
    credential = await service.create_credential(session, organization_id, body, box, clock.now())
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
) -> CredentialRead:
    return _read(request, await service.get_credential(session, organization_id, type, id))


@router.patch(
    "/{type}/{id}",
    operation_id="PatchServiceCredential",
    summary="Update a service credential",
    description="Changes any field of the credential's type (a secret given replaces the "
    "stored one; a field left out stays), the status (`deactivated` is final: any change of a "
    "deactivated credential is a 422) and, postroom's extension, `maxSendRate`.",
    responses=problem_responses(400, 401, 404, 422),
)
async def update_service_credential(
    type: str,
    id: str,
    body: CredentialPatch,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
    box: SecretBoxDep,
    settings: SettingsDep,
) -> CredentialRead:
    if body.type != type:
        raise invalid_field("type", f"must match the path: {type}")
    credential = await service.update_credential(
        session,
        organization_id,
        type,
        id,
        body,
        box,
        clock.now(),
        policy=settings.destination_policy(),
    )
    return _read(request, credential)
