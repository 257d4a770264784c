"""HTTP for /blocklists (Rebilly's, types email and email-domain)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from postroom.api.collections import PAGINATION_HEADERS, collection_query, set_pagination_headers
from postroom.api.deps import ClockDep, OrganizationDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.api.wire import resource_url
from postroom.blocklists import service
from postroom.blocklists.models import BlocklistEntry, BlocklistType
from postroom.blocklists.schemas import LIST_FIELDS, BlocklistRead, BlocklistWrite
from postroom.core.listing import ListQuery

router = APIRouter(prefix="/blocklists", tags=["Blocklists"])
ListQueryDep = Annotated[ListQuery, Depends(collection_query(LIST_FIELDS))]
EntryId = Annotated[str, Path(max_length=50, pattern=r"^[@~\-\.\w]+$")]

_LOCATION = {
    "Location": {
        "description": "URL of the new blocklist",
        "schema": {"type": "string", "format": "uri"},
    }
}
_DESCRIPTION = (
    "While an entry is in force (no `expirationTime`, or one still ahead), messages leave out "
    "the recipients it names: the address (type `email`) or every address at the domain "
    "(`email-domain`). A message with no recipient left fails with the attempt outcome "
    "`suppressed`."
)


def _read(request: Request, entry: BlocklistEntry) -> BlocklistRead:
    return BlocklistRead.of(entry, resource_url(request, "blocklists", entry.id))


def _fields(body: BlocklistWrite) -> service.EntryFields:
    return service.EntryFields(BlocklistType(body.type), body.value, body.expiration_time)


@router.get(
    "",
    operation_id="GetBlocklistCollection",
    summary="Retrieve blocklists",
    responses={200: {"headers": PAGINATION_HEADERS}, **problem_responses(401, 422)},
)
async def list_blocklists(
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    query: ListQueryDep,
) -> list[BlocklistRead]:
    entries, total = await service.list_entries(session, organization_id, query)
    set_pagination_headers(response, query, total)
    return [_read(request, e) for e in entries]


@router.post(
    "",
    status_code=201,
    operation_id="PostBlocklist",
    summary="Create a blocklist",
    description=_DESCRIPTION,
    responses={201: {"headers": _LOCATION}, **problem_responses(401, 409, 422)},
)
async def create_blocklist(
    body: BlocklistWrite,
    request: Request,
    response: Response,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> BlocklistRead:
    entry = await service.create_entry(session, organization_id, _fields(body), clock.now())
    read = _read(request, entry)
    response.headers["Location"] = read.links[0].href
    return read


@router.get(
    "/{id}",
    operation_id="GetBlocklist",
    summary="Retrieve a blocklist",
    responses=problem_responses(401, 404),
)
async def get_blocklist(
    id: str, request: Request, session: SessionDep, organization_id: OrganizationDep
) -> BlocklistRead:
    return _read(request, await service.get_entry(session, organization_id, id))


@router.put(
    "/{id}",
    operation_id="PutBlocklist",
    summary="Create a blocklist with specified ID",
    description="Replaces the entry of this id, or creates it (201).",
    response_model=BlocklistRead,
    responses={
        201: {"model": BlocklistRead, "description": "Blocklist created.", "headers": _LOCATION},
        **problem_responses(401, 409, 422),
    },
)
async def put_blocklist(
    id: EntryId,
    body: BlocklistWrite,
    request: Request,
    session: SessionDep,
    organization_id: OrganizationDep,
    clock: ClockDep,
) -> Response | BlocklistRead:
    entry, created = await service.put_entry(
        session, organization_id, id, _fields(body), clock.now()
    )
    read = _read(request, entry)
    if not created:
        return read
    return JSONResponse(
        read.model_dump(mode="json", by_alias=True),
        status_code=201,
        headers={"Location": read.links[0].href},
    )


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="DeleteBlocklist",
    summary="Delete a blocklist",
    responses=problem_responses(401, 404),
)
async def delete_blocklist(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> Response:
    await service.delete_entry(session, organization_id, id)
    return Response(status_code=204)
