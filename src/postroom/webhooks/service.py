"""Rules for webhooks: endpoints created, changed and deleted through the API, and `emit`, which
turns a message's change of fate into event rows and their pending deliveries, in the caller's
transaction (the dispatcher sends them from there)."""

import base64
import secrets as random_secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.crypto import SecretBox
from postroom.core.destinations import DestinationPolicy
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.credentials import service as credentials
from postroom.errors import Conflict, NotFound, invalid_field
from postroom.messages import service as messages
from postroom.webhooks import matching, repository
from postroom.webhooks.events import EventToEmit
from postroom.webhooks.models import DeliveryStatus, Webhook, WebhookStatus, WebhookTracking

WEBHOOK_PREFIX = "wh_"
EVENT_PREFIX = "evt_"
DELIVERY_PREFIX = "msg_"

# The organizations seen to have no active webhook, and until when (time.monotonic()) that is
# believed without asking the database again: emit runs for every outcome a worker records, and
# most organizations have no webhooks. A webhook created or reactivated in this process forgets
# its organization at once; in another process (a separate worker) it is noticed within
# _QUIET_SECONDS, so events of that short window may not be emitted.
_QUIET_SECONDS = 2.0
_quiet_until: dict[str, float] = {}


def _forget_quiet(organization_id: str) -> None:
    _quiet_until.pop(organization_id, None)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(24)).decode()


async def listeners(session: AsyncSession, organization_id: str) -> list[Webhook]:
    """The organization's active webhooks (none, from memory, for a moment after it was seen
    to have none)."""
    if _quiet_until.get(organization_id, 0.0) > time.monotonic():
        return []
    hooks = await repository.active_webhooks(session, organization_id)
    if not hooks:
        _quiet_until[organization_id] = time.monotonic() + _QUIET_SECONDS
    return hooks


async def emit(
    session: AsyncSession,
    organization_id: str,
    hooks: Sequence[Webhook],
    events: Sequence[EventToEmit],
    now: datetime,
) -> None:
    """Writes an event row per event that some of `hooks` (the organization's listeners)
    wants (its eventsFilter holds the type, empty meaning all; its filter matches the
    message), and one pending delivery, due now, per such webhook."""
    if not events or not hooks:
        return
    found = await messages.messages_for_events(session, {e.message_id for e in events})
    filters = {h.id: matching.parse(h.filter) for h in hooks}
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for event in events:
        message = found.get(event.message_id)
        if message is None:
            continue
        wanting = [
            h
            for h in hooks
            if (not h.events_filter or event.type in h.events_filter)
            and matching.matches(filters[h.id], message)
        ]
        if not wanting:
            continue
        event_id = new_id(EVENT_PREFIX)
        data: dict[str, Any] = {"emailMessage": messages.wire_resource(message)}
        if event.attempt is not None:
            data["attempt"] = dict(event.attempt)
        if event.event is not None:
            data["event"] = dict(event.event)
        event_rows.append(
            {
                "id": event_id,
                "organization_id": organization_id,
                "type": str(event.type),
                "entity_id": event.message_id,
                "payload": {
                    "id": event_id,
                    "type": str(event.type),
                    "occurredTime": now.isoformat().replace("+00:00", "Z"),
                    "data": data,
                },
                "created_time": now,
            }
        )
        delivery_rows.extend(
            {
                "id": new_id(DELIVERY_PREFIX),
                "organization_id": organization_id,
                "webhook_id": h.id,
                "event_id": event_id,
                "status": DeliveryStatus.PENDING,
                "attempt_count": 0,
                "due_at": now,
                "created_time": now,
                "updated_time": now,
            }
            for h in wanting
        )
    await repository.add_events(session, event_rows, delivery_rows)


# --- the API: /webhooks ---------------------------------------------------------------------


def check_url(url: str, policy: DestinationPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_field("url", "must be an absolute http or https URL")
    refusal = policy.refusal(parts.hostname)
    if refusal is not None:
        raise invalid_field("url", refusal)


def check_filter(raw: str | None) -> None:
    problem = matching.is_valid(raw)
    if problem is not None:
        raise invalid_field("filter", problem)


async def _check_credential(
    session: AsyncSession, organization_id: str, credential_id: str | None
) -> None:
    if credential_id is None:
        return
    await credentials.check_assignable(
        session, organization_id, credential_id, "credentialHash", for_webhook=True
    )


async def create_webhook(
    session: AsyncSession,
    organization_id: str,
    fields: dict[str, Any],
    box: SecretBox,
    policy: DestinationPolicy,
    now: datetime,
    *,
    max_webhooks: int,
    webhook_id: str | None = None,
) -> tuple[Webhook, str]:
    """The new webhook (of `webhook_id`, for PUT's upsert) and its signing secret in clear
    (shown this once)."""
    now = now.replace(microsecond=0)
    if await repository.count_webhooks(session, organization_id) >= max_webhooks:
        raise Conflict(f"an organization may have at most {max_webhooks} webhooks")
    check_url(fields["url"], policy)
    check_filter(fields.get("filter"))
    await _check_credential(session, organization_id, fields.get("credential_id"))
    secret = new_secret()
    if webhook_id is not None and await repository.webhook_id_taken(session, webhook_id):
        raise Conflict(f"the id {webhook_id} is taken")
    webhook = Webhook(
        id=webhook_id or new_id(WEBHOOK_PREFIX),
        organization_id=organization_id,
        status=fields.get("status", WebhookStatus.ACTIVE),
        inactive_reason=None,
        events_filter=fields.get("events_filter", []),
        filter=fields.get("filter"),
        method=fields.get("method", "POST"),
        url=fields["url"],
        headers=fields.get("headers", {}),
        credential_id=fields.get("credential_id"),
        secret=box.encrypt(secret),
        previous_secret=None,
        previous_secret_until=None,
        failing_since=None,
        created_time=now,
        updated_time=now,
    )
    if webhook.status == WebhookStatus.INACTIVE:
        webhook.inactive_reason = "deactivated"
    session.add(webhook)
    await session.flush()
    _forget_quiet(organization_id)
    return webhook, secret


async def get_webhook(session: AsyncSession, organization_id: str, webhook_id: str) -> Webhook:
    webhook = await repository.get_webhook(session, organization_id, webhook_id)
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return webhook


async def list_webhooks(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[Webhook], int]:
    return await repository.list_webhooks(session, organization_id, query)


async def update_webhook(
    session: AsyncSession,
    organization_id: str,
    webhook_id: str,
    changes: dict[str, Any],
    policy: DestinationPolicy,
    now: datetime,
) -> Webhook:
    """Applies the given fields (PUT gives them all, PATCH some). Setting it active again
    clears the record of its failures."""
    webhook = await get_webhook(session, organization_id, webhook_id)
    if "url" in changes:
        check_url(changes["url"], policy)
    if "filter" in changes:
        check_filter(changes["filter"])
    if "credential_id" in changes:
        await _check_credential(session, organization_id, changes["credential_id"])
    for name, value in changes.items():
        setattr(webhook, name, value)
    if changes.get("status") == WebhookStatus.ACTIVE:
        webhook.failing_since = None
        webhook.inactive_reason = None
        _forget_quiet(organization_id)
    elif changes.get("status") == WebhookStatus.INACTIVE and webhook.inactive_reason is None:
        webhook.inactive_reason = "deactivated"
    webhook.updated_time = now.replace(microsecond=0)
    await session.flush()
    return webhook


async def put_webhook(
    session: AsyncSession,
    organization_id: str,
    webhook_id: str,
    fields: dict[str, Any],
    box: SecretBox,
    policy: DestinationPolicy,
    now: datetime,
    *,
    max_webhooks: int,
) -> tuple[Webhook, str | None]:
    """Rebilly's upsert: replaces the organization's webhook of that id, or creates it (then
    with its new secret, else None)."""
    if await repository.get_webhook(session, organization_id, webhook_id) is None:
        return await create_webhook(
            session,
            organization_id,
            fields,
            box,
            policy,
            now,
            max_webhooks=max_webhooks,
            webhook_id=webhook_id,
        )
    return await update_webhook(session, organization_id, webhook_id, fields, policy, now), None


async def delete_webhook(session: AsyncSession, organization_id: str, webhook_id: str) -> None:
    webhook = await get_webhook(session, organization_id, webhook_id)
    await session.delete(webhook)
    await session.flush()


async def rotate_secret(
    session: AsyncSession,
    organization_id: str,
    webhook_id: str,
    box: SecretBox,
    overlap: timedelta,
    now: datetime,
) -> tuple[Webhook, str]:
    """A new secret (returned in clear, this once); the old one is still signed with until
    now + overlap."""
    webhook = await get_webhook(session, organization_id, webhook_id)
    secret = new_secret()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_until = now + overlap
    webhook.secret = box.encrypt(secret)
    webhook.updated_time = now.replace(microsecond=0)
    await session.flush()
    return webhook, secret


# --- the API: /tracking/webhooks ------------------------------------------------------------


async def get_tracking(
    session: AsyncSession, organization_id: str, tracking_id: str
) -> WebhookTracking:
    row = await repository.get_tracking(session, organization_id, tracking_id)
    if row is None:
        raise NotFound(f"webhook tracking {tracking_id} not found")
    return row


async def list_tracking(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[WebhookTracking], int]:
    return await repository.list_tracking(session, organization_id, query)


async def resend(
    session: AsyncSession, organization_id: str, tracking_id: str, now: datetime
) -> WebhookTracking:
    """The tracked attempt's delivery goes back to pending, due now and unleased: the
    dispatcher sends it again with the same webhook-id."""
    row = await get_tracking(session, organization_id, tracking_id)
    await repository.requeue_delivery(session, row.delivery_id, now)
    return row
