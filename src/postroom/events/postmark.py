"""Postmark's webhooks, one JSON event a request. Postmark signs nothing: it authenticates with
HTTP basic auth put in the webhook's URL (`https://user:pass@host/...`), checked here against
the credential's `eventsUsername` and `eventsPassword`.

How Postmark's records become postroom's (Postmark's webhook and bounce-type docs):
- `Delivery` is delivered; `SpamComplaint` (and a `Bounce` of type SpamNotification) a complaint.
- `Bounce` by its `Type`: HardBounce and BadEmailAddress (the address does not exist or is not
  one) are hard; Transient ("message delayed": Postmark keeps trying) is a deferral; the
  refusals that are not the address's fault (SoftBounce, DnsError, Blocked, DMARCPolicy,
  VirusNotification, Unknown) are soft. Types that are not a failure to deliver (AutoResponder,
  AddressChange, ChallengeVerification, OpenRelayTest, Subscribe/Unsubscribe, ManuallyDeactivated,
  Postmark's own API and template errors) are left out, like Open, Click and SubscriptionChange.
"""

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from postroom.delivery.transports.base import MESSAGE_ID_KEY
from postroom.errors import BadRequest, Forbidden, Unauthorized
from postroom.events import payloads
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import MAX_DIAGNOSTIC, ProviderEvent

if TYPE_CHECKING:
    from postroom.events.inbound import InboundRequest

log = logging.getLogger(__name__)

USERNAME_SETTING = "events_username"
PASSWORD_SECRET = "events_password"  # noqa: S105 - the name of the secret's key

_BOUNCES: dict[str, tuple[EventKind, BounceType | None]] = {
    "HardBounce": (EventKind.BOUNCED, BounceType.HARD),
    "BadEmailAddress": (EventKind.BOUNCED, BounceType.HARD),
    "Transient": (EventKind.DEFERRED, None),
    "SoftBounce": (EventKind.BOUNCED, BounceType.SOFT),
    "DnsError": (EventKind.BOUNCED, BounceType.SOFT),
    "Blocked": (EventKind.BOUNCED, BounceType.SOFT),
    "DMARCPolicy": (EventKind.BOUNCED, BounceType.SOFT),
    "VirusNotification": (EventKind.BOUNCED, BounceType.SOFT),
    "Unknown": (EventKind.BOUNCED, BounceType.SOFT),
    "SpamNotification": (EventKind.COMPLAINED, None),
    "SpamComplaint": (EventKind.COMPLAINED, None),
}


def verify(request: "InboundRequest") -> None:
    """Refuses a request without the credential's username and password: 401 asking for Basic
    (what Postmark sends from the URL); 403 when the credential has none set."""
    username = request.credential.settings.get(USERNAME_SETTING)
    password = request.credential.secrets.get(PASSWORD_SECRET)
    if not username or not password:
        raise Forbidden(
            "set the credential's eventsUsername and eventsPassword to receive Postmark's events"
        )
    given = _basic_credentials(request.headers.get("authorization", ""))
    expected = f"{username}:{password}".encode()
    if given is None or not hmac.compare_digest(given, expected):
        raise Unauthorized("the webhook URL's username and password are wrong", scheme="Basic")


def _basic_credentials(header: str) -> bytes | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or len(token) > 4_000:
        return None
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


async def parse(request: "InboundRequest") -> list[ProviderEvent]:
    verify(request)
    body = payloads.json_body(request.body)
    if not isinstance(body, dict):
        raise BadRequest("Postmark's events come as a JSON object")
    event = _event(request, body)
    if event is None:
        log.info(
            "Postmark record without a postroom kind left out",
            extra={"credential_id": request.credential.id},
        )
        return []
    return [event]


def _kind(data: Mapping[str, Any]) -> tuple[EventKind, BounceType | None] | None:
    match data.get("RecordType"):
        case "Delivery":
            return EventKind.DELIVERED, None
        case "SpamComplaint":
            return EventKind.COMPLAINED, None
        case "Bounce":
            type_ = data.get("Type")
            return _BOUNCES.get(type_) if isinstance(type_, str) else None
    return None


def _event(request: "InboundRequest", data: Mapping[str, Any]) -> ProviderEvent | None:
    found = _kind(data)
    if found is None:
        return None
    kind, bounce_type = found
    provider_message_id = payloads.identifier(data.get("MessageID"))
    delivery = data.get("RecordType") == "Delivery"
    occurred = payloads.iso_time(data.get("DeliveredAt" if delivery else "BouncedAt"))
    return ProviderEvent(
        kind=kind,
        source=EventSource.POSTMARK,
        occurred_at=occurred or request.now,
        raw=data,
        recipient=payloads.address(data.get("Recipient") if delivery else data.get("Email")),
        message_id=payloads.identifier(payloads.mapping(data.get("Metadata")).get(MESSAGE_ID_KEY)),
        provider_message_id=provider_message_id,
        # A bounce or complaint has its own ID; a delivery has none, and there is one delivery
        # of a message to a recipient, so the message's id serves (the recipient is in the key).
        provider_event_id=provider_message_id if delivery else payloads.identifier(data.get("ID")),
        bounce_type=bounce_type,
        diagnostic=_diagnostic(data),
    )


def _diagnostic(data: Mapping[str, Any]) -> str | None:
    said = [
        t
        for t in (
            payloads.text(data.get("Details"), MAX_DIAGNOSTIC),
            payloads.text(data.get("Description"), MAX_DIAGNOSTIC),
        )
        if t
    ]
    if len(said) == 2 and said[0] == said[1]:
        said.pop()
    return " — ".join(said) or None
