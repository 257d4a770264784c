"""Amazon SES events, as SES publishes them to an SNS topic whose HTTPS subscription is the
credential's `eventsUrl`: the SNS message verified (events/sns.py), then its SES record turned
into events. Both SES shapes are read: event publishing through a configuration set
(`eventType`, with the message's tags) and the older identity notifications
(`notificationType`, no tags: matched by the SES message id alone)."""

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from postroom.delivery.transports.base import MESSAGE_ID_KEY
from postroom.events import sns
from postroom.events.inbound import PARSERS, InboundRequest
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import ProviderEvent

log = logging.getLogger(__name__)

CREDENTIAL_TYPE = "aws-ses"

# A Permanent bounce will not succeed if sent again (no such address): blocklisted at once.
# Transient (a full mailbox, a message too large) may; Undetermined is SES not knowing why,
# so it counts as soft too, and only repeated ones blocklist the address.
_BOUNCE_TYPES = {
    "Permanent": BounceType.HARD,
    "Transient": BounceType.SOFT,
    "Undetermined": BounceType.SOFT,
}


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return fallback


def _tagged_message_id(mail: Mapping[str, Any]) -> str | None:
    # SES gives each tag's values as a list: {"postroom_message_id": ["mail_msg_…"]}.
    values = _object(mail.get("tags")).get(MESSAGE_ID_KEY)
    if isinstance(values, list) and values:
        return _text(values[0])
    return _text(values)


def _recipients(items: Any) -> Iterator[Mapping[str, Any]]:
    """The entries of a recipients list that name an address."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and _text(item.get("emailAddress")):
            yield item


def events_of(record: Mapping[str, Any], notification: sns.SnsMessage) -> list[ProviderEvent]:
    """One event per recipient of an SES record; none for a kind postroom does not track."""
    kind = record.get("eventType") or record.get("notificationType")
    mail = _object(record.get("mail"))

    def event(
        event_kind: EventKind,
        recipient: str,
        occurred: Any,
        *,
        bounce_type: BounceType | None = None,
        diagnostic: str | None = None,
    ) -> ProviderEvent:
        return ProviderEvent(
            kind=event_kind,
            source=EventSource.SES,
            occurred_at=_when(occurred, notification.timestamp),
            raw=record,
            recipient=recipient,
            message_id=_tagged_message_id(mail),
            provider_message_id=_text(mail.get("messageId")),
            provider_event_id=notification.message_id,
            bounce_type=bounce_type,
            diagnostic=diagnostic,
        )

    match kind:
        case "Delivery":
            delivery = _object(record.get("delivery"))
            recipients = delivery.get("recipients")
            return [
                event(EventKind.DELIVERED, r, delivery.get("timestamp"))
                for r in (recipients if isinstance(recipients, list) else [])
                if _text(r)
            ]
        case "Bounce":
            bounce = _object(record.get("bounce"))
            bounce_type = _BOUNCE_TYPES.get(_text(bounce.get("bounceType")) or "", BounceType.SOFT)
            return [
                event(
                    EventKind.BOUNCED,
                    r["emailAddress"],
                    bounce.get("timestamp"),
                    bounce_type=bounce_type,
                    diagnostic=_text(r.get("diagnosticCode")) or _text(r.get("status")),
                )
                for r in _recipients(bounce.get("bouncedRecipients"))
            ]
        case "Complaint":
            complaint = _object(record.get("complaint"))
            return [
                event(
                    EventKind.COMPLAINED,
                    r["emailAddress"],
                    complaint.get("timestamp"),
                    diagnostic=_text(complaint.get("complaintFeedbackType")),
                )
                for r in _recipients(complaint.get("complainedRecipients"))
            ]
        case "DeliveryDelay":
            delay = _object(record.get("deliveryDelay"))
            return [
                event(
                    EventKind.DEFERRED,
                    r["emailAddress"],
                    delay.get("timestamp"),
                    diagnostic=_text(r.get("diagnosticCode")) or _text(delay.get("delayType")),
                )
                for r in _recipients(delay.get("delayedRecipients"))
            ]
    # Send, Reject, Open, Click, Rendering Failure, Subscription: not events postroom keeps.
    return []


async def parse(request: InboundRequest) -> list[ProviderEvent]:
    notification = await sns.verified_message(
        request.body, request.headers, now=request.now, settings=request.settings
    )
    if notification.type == sns.SUBSCRIPTION_CONFIRMATION:
        await sns.confirm_subscription(notification, request.settings)
        return []
    if notification.type == sns.UNSUBSCRIBE_CONFIRMATION:
        log.info("SNS subscription ended", extra={"credential_id": request.credential.id})
        return []
    try:
        record = json.loads(notification.message)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        # A message published to the topic by hand (the console's test), not an SES record:
        # answered 200 so that SNS does not send it again.
        log.info(
            "SNS notification without an SES record; ignored",
            extra={"credential_id": request.credential.id},
        )
        return []
    return events_of(record, notification)


PARSERS[CREDENTIAL_TYPE] = parse
