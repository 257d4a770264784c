"""SendGrid's Event Webhook, signed (its "Signed Event Webhook"): a JSON array of events, signed
with ECDSA P-256 over the timestamp header followed by the raw body; the credential's
`eventVerificationKey` is the public key SendGrid shows for it.

How SendGrid's events become postroom's (SendGrid's Event Webhook reference):
- `delivered`, `deferred` as they are; `spamreport` is a complaint.
- `bounce` with `type` "bounce" is a hard bounce: the receiving server refused the address for
  good, and SendGrid itself suppresses it from then on. With `type` "blocked" it is soft:
  SendGrid's "blocks" are refusals for the message or the sending IP (content, reputation),
  not for the address, which SendGrid does not suppress either.
- `dropped` (SendGrid did not even try) is a hard bounce only when the reason is about the
  address ("Bounced Address": it bounced before; "Invalid": not an address); a drop for
  SendGrid's own policy (unsubscribed, spam content, quota) says nothing about the address
  and has no postroom kind, so it is left out, like the engagement events (open, click…).
"""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from postroom.core.ecdsa import InvalidKey, load_p256_public_key, verify_p256
from postroom.delivery.transports.base import MESSAGE_ID_KEY
from postroom.errors import BadRequest, Forbidden
from postroom.events import payloads
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import MAX_DIAGNOSTIC, ProviderEvent

if TYPE_CHECKING:
    from postroom.events.inbound import InboundRequest

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
KEY_SETTING = "event_verification_key"
MAX_EVENTS = 10_000  # SendGrid batches at most a few thousand per request

_KINDS = {
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "bounce": EventKind.BOUNCED,
    "dropped": EventKind.BOUNCED,
    "spamreport": EventKind.COMPLAINED,
}
_ADDRESS_DROPS = {"bounced address", "invalid"}


def verify(request: "InboundRequest") -> None:
    """Refuses (403, nothing recorded) a request SendGrid did not sign with the credential's
    key, or signed longer ago than the tolerance (a captured request played again)."""
    key_text = request.credential.settings.get(KEY_SETTING)
    if not isinstance(key_text, str) or not key_text:
        raise Forbidden("set the credential's eventVerificationKey to receive SendGrid's events")
    try:
        key = load_p256_public_key(key_text)
    except InvalidKey as error:  # checked when saved; kept for a key stored before that
        raise Forbidden("the credential's eventVerificationKey is not a P-256 key") from error
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise Forbidden(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    # Starlette decodes header values as latin-1: encoding back gives the bytes SendGrid signed.
    if not verify_p256(key, signature, timestamp.encode("latin-1") + request.body):
        raise Forbidden("the signature does not verify with the credential's key")
    signed_at = payloads.unix_time(timestamp) if timestamp.isdigit() else None
    tolerance = request.settings.timestamp_tolerance_seconds
    if not payloads.is_recent(signed_at, request.now, tolerance):
        raise Forbidden("the signature's timestamp is too far from now")


async def parse(request: "InboundRequest") -> list[ProviderEvent]:
    verify(request)
    body = payloads.json_body(request.body)
    if not isinstance(body, list):
        raise BadRequest("SendGrid's events come as a JSON array")
    events = [event for item in body[:MAX_EVENTS] if (event := _event(request, item))]
    if len(events) < len(body):
        log.info(
            "SendGrid events without a postroom kind left out",
            extra={"credential_id": request.credential.id, "left_out": len(body) - len(events)},
        )
    return events


def _event(request: "InboundRequest", item: Any) -> ProviderEvent | None:
    data = payloads.mapping(item)
    name = data.get("event")
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return None
    bounce_type = _bounce_type(data) if kind == EventKind.BOUNCED else None
    if kind == EventKind.BOUNCED and bounce_type is None:
        return None
    # sg_message_id is the X-Message-Id SendGrid answered the send with, then a dot and more.
    sg_message_id = payloads.identifier(data.get("sg_message_id"))
    return ProviderEvent(
        kind=kind,
        source=EventSource.SENDGRID,
        occurred_at=payloads.unix_time(data.get("timestamp")) or request.now,
        raw=data,
        recipient=payloads.address(data.get("email")),
        message_id=payloads.identifier(data.get(MESSAGE_ID_KEY)),
        provider_message_id=sg_message_id.split(".", 1)[0] if sg_message_id else None,
        provider_event_id=payloads.identifier(data.get("sg_event_id")),
        bounce_type=bounce_type,
        diagnostic=_diagnostic(data),
    )


def _bounce_type(data: Mapping[str, Any]) -> BounceType | None:
    if data.get("event") == "dropped":
        reason = data.get("reason")
        if isinstance(reason, str) and reason.strip().lower() in _ADDRESS_DROPS:
            return BounceType.HARD
        return None
    return BounceType.SOFT if data.get("type") == "blocked" else BounceType.HARD


def _diagnostic(data: Mapping[str, Any]) -> str | None:
    said = payloads.text(data.get("reason"), MAX_DIAGNOSTIC) or payloads.text(
        data.get("response"), MAX_DIAGNOSTIC
    )
    status = payloads.text(data.get("status"), 20)
    classification = payloads.text(data.get("bounce_classification"), 100)
    parts = [p for p in (status, said) if p]
    if data.get("event") == "dropped" and said:
        parts = [f"dropped by SendGrid: {said}"]
    if classification:
        parts.append(f"({classification})")
    return " ".join(parts) or None
