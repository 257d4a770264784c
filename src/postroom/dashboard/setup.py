"""Setup and health pages: credentials, webhooks and their log, the blocklist, the queue."""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import TypeAdapter

from postroom.blocklists import service as blocklists
from postroom.blocklists.models import BlocklistType
from postroom.core.listing import Condition, ListQuery, SortKey, Term
from postroom.credentials import service as credentials
from postroom.credentials.models import CredentialStatus
from postroom.credentials.schemas import CredentialPatch
from postroom.dashboard.chart import HEIGHT, WIDTH, HourlyCounts, hourly_bars
from postroom.dashboard.security import PREFIX, CheckedFormDep, DashboardRoute, SignedInDep
from postroom.dashboard.templating import render
from postroom.delivery import service as delivery
from postroom.messages import service as messages
from postroom.messages.models import MessageStatus
from postroom.senders import service as senders
from postroom.webhooks import service as webhooks

router = APIRouter(route_class=DashboardRoute)
_SHOWN = 200
_NEWEST = (SortKey("created_time", descending=True),)
_credential_patch: TypeAdapter[CredentialPatch] = TypeAdapter(CredentialPatch)


@router.get("/credentials")
async def list_credentials(request: Request, signed_in: SignedInDep) -> Response:
    found = []
    for type_ in credentials.TYPES:
        page, _ = await credentials.list_credentials(
            request.state.session, signed_in.organization_id, type_, ListQuery(limit=_SHOWN)
        )
        found.extend(page)
    return render(request, "credentials.html", {"signed_in": signed_in, "credentials": found})


@router.post("/credentials/{type}/{id}/status")
async def change_credential_status(
    type: str,
    id: str,
    request: Request,
    signed_in: CheckedFormDep,
    status: Annotated[CredentialStatus, Form()],
) -> Response:
    """Activate or deactivate, as PATCH /service-credentials/{type}/{id} with only a status."""
    credentials.require_type(type)
    state = request.app.state
    await credentials.update_credential(
        request.state.session,
        signed_in.organization_id,
        type,
        id,
        _credential_patch.validate_python({"type": type, "status": status.value}),
        state.secret_box,
        state.clock.now(),
        policy=state.settings.destination_policy(),
    )
    return RedirectResponse(f"{PREFIX}/credentials", status_code=303)


@router.get("/delivery-settings")
async def list_delivery_settings(request: Request, signed_in: SignedInDep) -> Response:
    found, _ = await senders.list_settings(
        request.state.session, signed_in.organization_id, ListQuery(limit=_SHOWN)
    )
    return render(request, "delivery_settings.html", {"signed_in": signed_in, "settings": found})


@router.get("/webhooks")
async def list_webhooks(request: Request, signed_in: SignedInDep) -> Response:
    session, organization_id = request.state.session, signed_in.organization_id
    hooks, _ = await webhooks.list_webhooks(session, organization_id, ListQuery(limit=_SHOWN))
    log, _ = await webhooks.list_tracking(
        session, organization_id, ListQuery(limit=50, sort=_NEWEST)
    )
    return render(
        request, "webhooks.html", {"signed_in": signed_in, "webhooks": hooks, "tracking": log}
    )


@router.post("/webhooks/tracking/{id}/resend")
async def resend_webhook(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    await webhooks.resend(
        request.state.session, signed_in.organization_id, id, request.app.state.clock.now()
    )
    return RedirectResponse(f"{PREFIX}/webhooks", status_code=303)


@router.get("/blocklist")
async def list_blocklist(request: Request, signed_in: SignedInDep) -> Response:
    entries, total = await blocklists.list_entries(
        request.state.session, signed_in.organization_id, ListQuery(limit=_SHOWN, sort=_NEWEST)
    )
    return render(
        request,
        "blocklist.html",
        {"signed_in": signed_in, "entries": entries, "total": total, "types": list(BlocklistType)},
    )


@router.post("/blocklist")
async def add_to_blocklist(
    request: Request,
    signed_in: CheckedFormDep,
    type: Annotated[BlocklistType, Form()],
    value: Annotated[str, Form(min_length=1, max_length=254)],
) -> Response:
    fields = blocklists.EntryFields(type, value.strip(), None)
    await blocklists.create_entry(
        request.state.session, signed_in.organization_id, fields, request.app.state.clock.now()
    )
    return RedirectResponse(f"{PREFIX}/blocklist", status_code=303)


@router.post("/blocklist/{id}/delete")
async def remove_from_blocklist(id: str, request: Request, signed_in: CheckedFormDep) -> Response:
    await blocklists.delete_entry(request.state.session, signed_in.organization_id, id)
    return RedirectResponse(f"{PREFIX}/blocklist", status_code=303)


async def _count(request: Request, organization_id: str, *conditions: Condition) -> int:
    _, total = await messages.list_messages(
        request.state.session, organization_id, ListQuery(limit=0, conditions=conditions)
    )
    return total


def _status_is(status: MessageStatus) -> Condition:
    return Condition("status", allowed=(Term(status.value, status.value),))


def _updated_within(start: datetime, end: datetime) -> Condition:
    # Inclusive on both ends in the grammar: the hour ends a microsecond before the next.
    return Condition(
        "updated_at", allowed=(Term(start, end - timedelta(microseconds=1), is_range=True),)
    )


@router.get("/queue")
async def show_queue(request: Request, signed_in: SignedInDep) -> Response:
    session, organization_id = request.state.session, signed_in.organization_id
    settings = request.app.state.settings
    now: datetime = request.app.state.clock.now()
    depth, overdue = await delivery.queue_stats(session, now)
    waiting = await delivery.waiting_seconds(session, now)
    workers = await delivery.live_workers(session, now, settings.delivery.worker_stale_seconds)
    outbox = await _count(request, organization_id, _status_is(MessageStatus.OUTBOX))
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    hours: list[HourlyCounts] = []
    for back in range(23, -1, -1):
        start = last_hour - timedelta(hours=back)
        within = _updated_within(start, start + timedelta(hours=1))
        sent = await _count(request, organization_id, _status_is(MessageStatus.SENT), within)
        failed = await _count(request, organization_id, _status_is(MessageStatus.FAILED), within)
        hours.append(HourlyCounts(start, sent, failed))
    return render(
        request,
        "queue.html",
        {
            "signed_in": signed_in,
            "outbox": outbox,
            "depth": depth,
            "overdue": overdue,
            "waiting": waiting,
            "workers": workers,
            "hours": hours,
            "bars": hourly_bars(hours),
            "width": WIDTH,
            "height": HEIGHT,
            "total_sent": sum(h.sent for h in hours),
            "total_failed": sum(h.failed for h in hours),
        },
    )
