"""HTTP for /api-keys and /organizations: the calling key's own organization only."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.auth import service
from postroom.auth.models import ApiKey, Organization
from postroom.auth.schemas import API_KEY_FIELDS, ApiKeyRead, ApiKeyWrite, OrganizationRead
from postroom.core.listing import ListQuery

api_keys = APIRouter(prefix="/api-keys", tags=["API keys"])
organizations = APIRouter(prefix="/organizations", tags=["Organizations"])
ApiKeyQueryDep = Annotated[ListQuery, Depends(collection_query(API_KEY_FIELDS))]


def _key(request: Request, key: ApiKey, secret_key: str | None = None) -> ApiKeyRead:
    return ApiKeyRead.of(key, resource_url(request, "api-keys", key.id), secret_key)


def _organization(request: Request, organization: Organization) -> OrganizationRead:
    return OrganizationRead.of(
        organization, resource_url(request, "organizations", organization.id)
    )


@api_keys.get(
    "",
    operation_id="GetApiKeyCollection",
    summary="Retrieve API keys",
    description="The live keys of the caller's organization (never their secrets).",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_api_keys(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ApiKeyQueryDep,
) -> list[ApiKeyRead]:
    keys, total = await service.list_api_keys(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_key(request, k) for k in keys]


@api_keys.post(
    "",
    status_code=201,
    operation_id="PostApiKey",
    summary="Create an API key",
    description="The answer carries `secretKey`, the key itself: shown this once, never again "
    "(postroom keeps only its hash). Every key reaches the whole organization: `acl` and "
    "`allowedIps` must be empty.",
    responses=problem_responses(401, 422),
)
async def create_api_key(
    body: ApiKeyWrite,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> ApiKeyRead:
    key, secret = await service.issue_api_key(
        session, organization_id, clock.now().replace(microsecond=0), name=body.description
    )
    read = _key(request, key, secret)
    response.headers["Location"] = read.links[0].href
    return read


@api_keys.get(
    "/{id}",
    operation_id="GetApiKey",
    summary="Retrieve an API key",
    responses=problem_responses(401, 404),
)
async def get_api_key(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> ApiKeyRead:
    return _key(request, await service.get_api_key(session, organization_id, id))


@api_keys.put(
    "/{id}",
    operation_id="PutApiKey",
    summary="Update an API key",
    description="Changes the description. postroom makes key ids itself: an unknown id is a "
    "404, not a new key.",
    responses=problem_responses(401, 404, 422),
)
async def put_api_key(
    id: str,
    body: ApiKeyWrite,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> ApiKeyRead:
    key = await service.describe_api_key(
        session, organization_id, id, body.description, clock.now().replace(microsecond=0)
    )
    return _key(request, key)


@api_keys.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteApiKey",
    summary="Revoke an API key",
    description="The key stops working at once in the API process that answers, and within "
    "`POSTROOM_LIMITS__API_KEY_CACHE_SECONDS` in the others. The organization's last key "
    "cannot be revoked (409).",
    responses=problem_responses(401, 404, 409),
)
async def delete_api_key(
    id: str,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> Response:
    await service.revoke_api_key(
        session,
        organization_id,
        id,
        clock.now().replace(microsecond=0),
        request.app.state.caller_cache,
    )
    return Response(status_code=204)


@organizations.get(
    "",
    operation_id="GetOrganizationCollection",
    summary="Retrieve organizations",
    description="The one organization the API key reaches: how an SDK user finds the id to "
    "pass as `organizationId`.",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401)},
)
async def list_organizations(
    request: Request, response: Response, session: SessionDep, organization_id: OrganizationDep
) -> list[OrganizationRead]:
    organization = await service.get_organization(session, organization_id, organization_id)
    response.headers.update(
        {"Pagination-Total": "1", "Pagination-Limit": "1", "Pagination-Offset": "0"}
    )
    return [
        OrganizationRead.of(organization, resource_url(request, "organizations", organization.id))
    ]


@organizations.get(
    "/{id}",
    operation_id="GetOrganization",
    summary="Retrieve an organization",
    description="The API key's own organization; any other id is a 404.",
    responses=problem_responses(401, 404),
)
async def get_organization(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> OrganizationRead:
    organization = await service.get_organization(session, organization_id, id)
    return OrganizationRead.of(
        organization, resource_url(request, "organizations", organization.id)
    )
