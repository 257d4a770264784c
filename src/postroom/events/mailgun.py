"""Mailgun's webhooks (the JSON kind, one event a request): `{"signature": {"timestamp",
"token", "signature"}, "event-data": {...}}`, the signature being the HMAC-SHA256 (hex) of the
timestamp followed by the token, keyed with the credential's `webhookSigningKey`.

Mailgun's signature covers the timestamp and the token, not the event: what makes a captured
request useless is that a token is accepted once per credential and a timestamp only within
the tolerance, both checked before anything is recorded.

How Mailgun's events become postroom's (Mailgun's webhook and event docs):
- `delivered` and `complained` as they are;
- `failed` with `severity` "permanent" is a hard bounce (Mailgun has given up on the address);
  with "temporary" Mailgun keeps retrying, so it is a deferral, not a bounce (a permanent
  failure follows if it gives up);
- anything else (opened, clicked, unsubscribed, accepted) has no postroom kind and is left out.
"""

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from postroom.delivery.transports.base import MESSAGE_ID_KEY
from postroom.delivery.transports.correlation import without_brackets
from postroom.errors import Forbidden
from postroom.events import payloads
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import MAX_DIAGNOSTIC, ProviderEvent

if TYPE_CHECKING:
    from postroom.events.inbound import InboundRequest

log = logging.getLogger(__name__)

KEY_SECRET = "webhook_signing_key"  # noqa: S105 - the name of the secret's key
MAX_TOKEN = 200


async def parse(request: "InboundRequest") -> list[ProviderEvent]:
    body = payloads.mapping(payloads.json_body(request.body))
    await verify(request, payloads.mapping(body.get("signature")))
    event = _event(request, payloads.mapping(body.get("event-data")))
    if event is None:
        log.info(
            "Mailgun event without a postroom kind left out",
            extra={"credential_id": request.credential.id},
        )
        return []
    return [event]


async def verify(request: "InboundRequest", signature: Mapping[str, Any]) -> None:
    """Refuses (403, nothing recorded) a request not signed with the credential's key, signed
    longer ago than the tolerance, or whose token this credential has already accepted."""
    key = request.credential.secrets.get(KEY_SECRET)
    if not key:
        raise Forbidden("set the credential's webhookSigningKey to receive Mailgun's events")
    timestamp, token, given = (_signed_field(signature, k) for k in _SIGNED_FIELDS)
    if len(token) > MAX_TOKEN or len(given) > 128 or not timestamp.isdigit():
        raise Forbidden("the signature does not verify with the credential's key")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise Forbidden("the signature does not verify with the credential's key")
    tolerance = request.settings.timestamp_tolerance_seconds
    if not payloads.is_recent(payloads.unix_time(timestamp), request.now, tolerance):
        raise Forbidden("the signature's timestamp is too far from now")
    if not await request.accept_once(token):
        raise Forbidden("this signature's token was already used")


_SIGNED_FIELDS = ("timestamp", "token", "signature")


def _signed_field(signature: Mapping[str, Any], name: str) -> str:
    value = signature.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise Forbidden("signature.timestamp, signature.token and signature.signature are required")
    return value


def _kind(data: Mapping[str, Any]) -> tuple[EventKind, BounceType | None] | None:
    match data.get("event"):
        case "delivered":
            return EventKind.DELIVERED, None
        case "complained":
            return EventKind.COMPLAINED, None
        case "failed" if data.get("severity") == "temporary":
            return EventKind.DEFERRED, None
        case "failed" if data.get("severity") == "permanent":
            return EventKind.BOUNCED, BounceType.HARD
        case "failed":
            return EventKind.BOUNCED, BounceType.SOFT
    return None


def _event(request: "InboundRequest", data: Mapping[str, Any]) -> ProviderEvent | None:
    found = _kind(data)
    if found is None:
        return None
    kind, bounce_type = found
    headers = payloads.mapping(payloads.mapping(data.get("message")).get("headers"))
    # Mailgun's send answers `<id@domain>`; its events carry the id without the brackets, which
    # is how the attempt records it.
    bare = without_brackets(payloads.identifier(headers.get("message-id")))
    provider_message_id = bare if isinstance(bare, str) and bare else None
    variables = payloads.mapping(data.get("user-variables"))
    return ProviderEvent(
        kind=kind,
        source=EventSource.MAILGUN,
        occurred_at=payloads.unix_time(data.get("timestamp")) or request.now,
        raw=data,
        recipient=payloads.address(data.get("recipient")),
        message_id=payloads.identifier(variables.get(MESSAGE_ID_KEY)),
        provider_message_id=provider_message_id,
        provider_event_id=payloads.identifier(data.get("id")),
        bounce_type=bounce_type,
        diagnostic=_diagnostic(payloads.mapping(data.get("delivery-status"))),
    )


def _diagnostic(status: Mapping[str, Any]) -> str | None:
    code = payloads.text(status.get("code"), 10)
    said = [
        t
        for t in (
            payloads.text(status.get("description"), MAX_DIAGNOSTIC),
            payloads.text(status.get("message"), MAX_DIAGNOSTIC),
        )
        if t
    ]
    if len(said) == 2 and said[0] == said[1]:
        said.pop()
    if code and said and not said[0].startswith(code):  # the SMTP reply often has it already
        said.insert(0, code)
    return " ".join(said) or None
