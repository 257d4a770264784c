"""SQL over the webhooks tables."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import ListQuery, SortKey
from postroom.db.listing import fetch_page, filtered
from postroom.webhooks.models import (
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookStatus,
    WebhookTracking,
)

# --- the dispatch half: claiming due deliveries and recording attempts ---------------------
#
# A claim leases due pending deliveries (lease_token, leased_until) as delivery/repository.py
# leases mail: on PostgreSQL the rows are taken with FOR UPDATE SKIP LOCKED, so workers never
# claim the same row; on SQLite the claim runs under BEGIN IMMEDIATE and is atomic by itself. A
# lease that runs out (its worker died) makes the delivery claimable again. At most
# `allowance[webhook]` deliveries of a webhook are claimed, the oldest due first: a webhook
# whose endpoint is slow or dead fills only its own share.

_deliveries = cast(Table, WebhookDelivery.__table__)
_d = _deliveries.c


def _claimable(now: datetime) -> list[Any]:
    return [
        _d.status == DeliveryStatus.PENDING,
        _d.due_at <= now,
        or_(_d.leased_until.is_(None), _d.leased_until <= now),
    ]


async def claim_due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    token: str,
    limit: int,
    per_webhook: int,
    allowance: Mapping[str, int],
) -> list[str]:
    """The ids of up to `limit` deliveries leased to `token`: at most `per_webhook` of any
    webhook, and `allowance[webhook]` of a webhook the mapping names (0: none)."""
    full = [webhook for webhook, room in allowance.items() if room <= 0]
    rank = (
        func.row_number()
        .over(partition_by=_d.webhook_id, order_by=(_d.due_at, _d.id))
        .label("rank")
    )
    due = select(_d.id, _d.webhook_id, _d.due_at, rank).where(*_claimable(now))
    if full:
        due = due.where(_d.webhook_id.not_in(full))
    ranked = due.subquery()
    rows = await session.execute(
        select(ranked.c.id, ranked.c.webhook_id)
        .where(ranked.c.rank <= per_webhook)
        .order_by(ranked.c.due_at, ranked.c.id)
        .limit(limit * 4)
    )
    chosen: list[str] = []
    taken: dict[str, int] = {}
    for delivery_id, webhook_id in rows:
        if taken.get(webhook_id, 0) >= allowance.get(webhook_id, per_webhook):
            continue
        taken[webhook_id] = taken.get(webhook_id, 0) + 1
        chosen.append(delivery_id)
        if len(chosen) == limit:
            break
    if not chosen:
        return []
    still_claimable = (
        select(_d.id).where(_d.id.in_(chosen), *_claimable(now)).with_for_update(skip_locked=True)
    )
    claimed = await session.execute(
        update(_deliveries)
        .where(_d.id.in_(chosen), _d.id.in_(still_claimable.scalar_subquery()))
        .values(lease_token=token, leased_until=lease_until)
        .returning(_d.id)
    )
    return [str(i) for (i,) in claimed]


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: WebhookDelivery
    event: WebhookEvent
    webhook: Webhook | None


async def load_claimed(session: AsyncSession, ids: Sequence[str]) -> list[ClaimedDelivery]:
    rows = await session.execute(
        select(WebhookDelivery, WebhookEvent, Webhook)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .outerjoin(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id.in_(ids))
    )
    return [ClaimedDelivery(d, e, w) for d, e, w in rows]


async def add_tracking(session: AsyncSession, row: Mapping[str, Any]) -> None:
    await session.execute(insert(WebhookTracking), [dict(row)])


async def settle_delivery(
    session: AsyncSession, delivery_id: str, token: str, now: datetime, **values: Any
) -> bool:
    """Writes the outcome of an attempt if the delivery is still leased to `token` (a worker
    whose lease ran out finds another's claim in its place and leaves it alone)."""
    result = await session.execute(
        update(_deliveries)
        .where(_d.id == delivery_id, _d.lease_token == token)
        .values(lease_token=None, leased_until=None, updated_time=now, **values)
    )
    return bool(cast(Any, result).rowcount)


async def mark_webhook_failing(session: AsyncSession, webhook_id: str, now: datetime) -> datetime:
    """Starts the webhook's run of failures if none is under way; its start."""
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.failing_since.is_(None))
        .values(failing_since=now, updated_time=now)
    )
    since = await session.scalar(select(Webhook.failing_since).where(Webhook.id == webhook_id))
    return since or now


async def clear_webhook_failing(session: AsyncSession, webhook_id: str, now: datetime) -> None:
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.failing_since.is_not(None))
        .values(failing_since=None, updated_time=now)
    )


async def deactivate_webhook(
    session: AsyncSession, webhook_id: str, reason: str, now: datetime
) -> None:
    """Sets the webhook inactive and fails its pending deliveries with the reason."""
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.status == WebhookStatus.ACTIVE)
        .values(status=WebhookStatus.INACTIVE, inactive_reason=reason, updated_time=now)
    )
    await session.execute(
        update(_deliveries)
        .where(_d.webhook_id == webhook_id, _d.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.FAILED,
            last_error=reason,
            lease_token=None,
            leased_until=None,
            updated_time=now,
        )
    )


# --- the API half: emit, /webhooks and /tracking/webhooks ---------------------------------


async def active_webhooks(session: AsyncSession, organization_id: str) -> list[Webhook]:
    """One walk of ix_webhooks_organization_id."""
    found = await session.scalars(
        select(Webhook).where(
            Webhook.organization_id == organization_id, Webhook.status == WebhookStatus.ACTIVE
        )
    )
    return list(found.all())


async def webhook_id_taken(session: AsyncSession, webhook_id: str) -> bool:
    """By any organization's webhook."""
    return await session.scalar(select(Webhook.id).where(Webhook.id == webhook_id)) is not None


async def count_webhooks(session: AsyncSession, organization_id: str) -> int:
    count = await session.scalar(
        select(func.count()).where(Webhook.organization_id == organization_id)
    )
    return int(count or 0)


async def add_events(
    session: AsyncSession,
    events: Sequence[Mapping[str, Any]],
    deliveries: Sequence[Mapping[str, Any]],
) -> None:
    if events:
        await session.execute(insert(WebhookEvent), list(events))
    if deliveries:
        await session.execute(insert(WebhookDelivery), list(deliveries))


async def get_webhook(
    session: AsyncSession, organization_id: str, webhook_id: str
) -> Webhook | None:
    return await session.scalar(
        select(Webhook).where(Webhook.id == webhook_id, Webhook.organization_id == organization_id)
    )


_webhooks = cast(Table, Webhook.__table__)
_webhook_columns: dict[str, ColumnElement[Any]] = dict(_webhooks.c.items())


async def list_webhooks(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[Webhook], int]:
    base = filtered(
        select(Webhook).where(Webhook.organization_id == organization_id),
        query,
        _webhook_columns,
        search=func.lower(Webhook.url),
    )
    return await fetch_page(
        session,
        base,
        query,
        _webhook_columns,
        default_sort=(SortKey("created_time", descending=True),),
        tiebreak=_webhooks.c.id,
    )


_tracking = cast(Table, WebhookTracking.__table__)
_tracking_columns: dict[str, ColumnElement[Any]] = dict(_tracking.c.items())


async def get_tracking(
    session: AsyncSession, organization_id: str, tracking_id: str
) -> WebhookTracking | None:
    return await session.scalar(
        select(WebhookTracking).where(
            WebhookTracking.id == tracking_id, WebhookTracking.organization_id == organization_id
        )
    )


async def list_tracking(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[WebhookTracking], int]:
    base = filtered(
        select(WebhookTracking).where(WebhookTracking.organization_id == organization_id),
        query,
        _tracking_columns,
        search=func.lower(WebhookTracking.url),
    )
    return await fetch_page(
        session,
        base,
        query,
        _tracking_columns,
        default_sort=(SortKey("created_time", descending=True),),
        tiebreak=_tracking.c.id,
    )


async def requeue_delivery(session: AsyncSession, delivery_id: str, now: datetime) -> None:
    """Pending, due now, unleased; its id (the webhook-id) and attempt count are kept."""
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            status=DeliveryStatus.PENDING,
            due_at=now,
            lease_token=None,
            leased_until=None,
            updated_time=now,
        )
    )
