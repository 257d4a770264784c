"""Provider events in: what a mail service (or a bounce sent back over SMTP) reported about a
message after it was sent. Each one is recorded once on its message, fires its webhook, and a
hard bounce or complaint puts the recipient on the blocklist, all in the caller's transaction.

The inbound modules (events/sendgrid.py, mailgun.py, postmark.py, ses.py, bounces.py) verify
the provider's signing and turn its payload into ProviderEvents; nothing here trusts them more
than that: an event is recorded only on a message of the credential's own organization."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.blocklists import service as blocklists
from postroom.core.ids import new_id
from postroom.core.text import storable
from postroom.delivery import service as delivery
from postroom.events import repository
from postroom.events.models import BounceType, EventKind, EventSource, MessageEvent
from postroom.events.schemas import MessageEventRead
from postroom.messages import service as messages
from postroom.settings import EventSettings
from postroom.webhooks import service as webhooks
from postroom.webhooks.events import EventToEmit, EventType

log = logging.getLogger(__name__)

EVENT_PREFIX = "mail_evt_"
MAX_DIAGNOSTIC = 2_000

_WEBHOOK_TYPES = {
    EventKind.DELIVERED: EventType.DELIVERED,
    EventKind.DEFERRED: EventType.DEFERRED,
    EventKind.BOUNCED: EventType.BOUNCED,
    EventKind.COMPLAINED: EventType.COMPLAINED,
    EventKind.UNSUBSCRIBED: EventType.UNSUBSCRIBED,
}


@dataclass(frozen=True)
class ProviderEvent:
    """One event about one message (and one recipient, where the provider names it)."""

    kind: EventKind
    source: EventSource
    occurred_at: datetime
    raw: Mapping[str, Any]
    """The provider's payload for this event, kept as received."""
    recipient: str | None = None
    message_id: str | None = None
    """postroom's id, where it came back (the provider's custom data, the Return-Path)."""
    provider_message_id: str | None = None
    """The provider's id of the accepted message, as the attempt recorded it."""
    provider_event_id: str | None = None
    """The provider's id of this event: a retried delivery of it is recorded once."""
    bounce_type: BounceType | None = None
    diagnostic: str | None = None


@dataclass
class Recorded:
    """What record did with a request's events."""

    recorded: list[MessageEvent] = field(default_factory=list)
    unknown: int = 0  # no message of the organization matches
    duplicates: int = 0  # recorded before


async def _resolve(
    session: AsyncSession, organization_id: str, events: Sequence[ProviderEvent]
) -> list[str | None]:
    """The organization's message each event is about, or None."""
    by_provider = await delivery.messages_by_provider_id(
        session,
        {e.provider_message_id for e in events if e.provider_message_id and not e.message_id},
    )
    wanted = [e.message_id or by_provider.get(e.provider_message_id or "") for e in events]
    found = await messages.messages_for_delivery(session, {m for m in wanted if m})
    return [
        m
        if m and (message := found.get(m)) and message.organization_id == organization_id
        else None
        for m in wanted
    ]


MAX_RAW_TEXT = 10_000  # characters of one string of a provider's payload kept


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A provider's payload as storable JSON: strings made storable (PostgreSQL's JSONB refuses
    NUL) and bounded, nesting cut at a sane depth."""
    if depth > 20:
        return None
    if isinstance(value, str):
        return storable(value, MAX_RAW_TEXT)
    if isinstance(value, Mapping):
        return {storable(str(k), 200): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return storable(str(value), MAX_RAW_TEXT)


def _dedupe_key(event: ProviderEvent) -> str | None:
    if not event.provider_event_id:
        return None
    return storable(
        f"{event.source}:{event.kind}:{event.provider_event_id}:{event.recipient or ''}", 400
    )


async def record(
    session: AsyncSession,
    organization_id: str,
    events: Sequence[ProviderEvent],
    *,
    now: datetime,
    settings: EventSettings,
) -> Recorded:
    result = Recorded()
    message_ids = await _resolve(session, organization_id, events)
    for event, message_id in zip(events, message_ids, strict=True):
        if message_id is None:
            result.unknown += 1
            log.info(
                "provider event for no known message; ignored",
                extra={
                    "organization_id": organization_id,
                    "source": str(event.source),
                    "event": str(event.kind),
                    "provider_message_id": event.provider_message_id,
                    "message_id": event.message_id,
                },
            )
            continue
        recipient = event.recipient.lower() if event.recipient else None
        row = await repository.add_event(
            session,
            {
                "id": new_id(EVENT_PREFIX),
                "organization_id": organization_id,
                "message_id": message_id,
                "type": str(event.kind),
                "source": str(event.source),
                "recipient": storable(recipient, 254) if recipient else None,
                "bounce_type": str(event.bounce_type) if event.bounce_type else None,
                "diagnostic": storable(event.diagnostic, MAX_DIAGNOSTIC)
                if event.diagnostic
                else None,
                "dedupe_key": _dedupe_key(event),
                "raw": _json_safe(event.raw),
                "occurred_time": event.occurred_at,
                "created_time": now,
            },
        )
        if row is None:
            result.duplicates += 1
            continue
        result.recorded.append(row)
        await _blocklist(session, row, now=now, settings=settings)
    await _emit(session, organization_id, result.recorded, now)
    return result


async def _blocklist(
    session: AsyncSession, event: MessageEvent, *, now: datetime, settings: EventSettings
) -> None:
    if not event.recipient:
        return
    # An unsubscribe is the recipient's own request: honoured whatever auto_blocklist says.
    if not settings.auto_blocklist and event.type != EventKind.UNSUBSCRIBED:
        return
    if event.type == EventKind.BOUNCED and event.bounce_type == BounceType.SOFT:
        bounces = await repository.soft_bounces(session, event.organization_id, event.recipient)
        if bounces < settings.soft_bounce_limit:
            return
    elif event.type not in (EventKind.BOUNCED, EventKind.COMPLAINED, EventKind.UNSUBSCRIBED):
        return
    days = settings.blocklist_days if event.type != EventKind.UNSUBSCRIBED else None
    expiration = now + timedelta(days=days) if days else None
    await blocklists.add_automated(
        session,
        event.organization_id,
        event.recipient,
        entity_id=event.message_id,
        now=now,
        expiration_time=expiration,
    )


async def _emit(
    session: AsyncSession, organization_id: str, recorded: Sequence[MessageEvent], now: datetime
) -> None:
    if not recorded:
        return
    hooks = await webhooks.listeners(session, organization_id)
    if not hooks:
        return
    await webhooks.emit(
        session,
        organization_id,
        hooks,
        [
            EventToEmit(
                _WEBHOOK_TYPES[EventKind(e.type)],
                e.message_id,
                event=MessageEventRead.of(e).model_dump(mode="json", by_alias=True),
            )
            for e in recorded
        ],
        now,
    )


async def list_events(
    session: AsyncSession, organization_id: str, message_id: str
) -> list[MessageEvent]:
    await messages.get_message(session, organization_id, message_id)  # 404 unless theirs
    return await repository.events_of(session, message_id)


async def accept_once(
    session: AsyncSession, credential_id: str, token: str, *, now: datetime, keep: timedelta
) -> bool:
    """A signed request's token (Mailgun's) seen for the first time; False for a replay. Tokens
    older than `keep` (past the timestamp tolerance, so refused anyway) are forgotten."""
    await repository.forget_replay_tokens(session, now - keep)
    return await repository.add_replay_token(session, credential_id, token[:200], now)
