"""A report mailed back to a bounce address, read into events: delivery status notifications
(RFC 3464) and feedback reports (ARF, RFC 5965) with the stdlib parser; any other bounce
through flufl.bounce's detectors, which know the many formats that follow no standard.

What arrives is untrusted: every value kept is cut to size and made storable, and the events
name no message (the caller knows it from the address the report was sent to)."""

import email
import logging
from datetime import datetime
from email.message import Message
from typing import Any

from flufl.bounce import all_failures

from postroom.core.text import storable
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import ProviderEvent

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100  # events read from one report
MAX_FIELDS = 30  # fields kept per report part in `raw`
MAX_VALUE = 1_000  # characters kept per field value
MAX_NAME = 100

# RFC 5965 3.1: "not-spam" is the one feedback type that is no complaint.
_NOT_COMPLAINTS = {"not-spam"}
_ACTIONS = {
    "failed": EventKind.BOUNCED,
    "delayed": EventKind.DEFERRED,
    "delivered": EventKind.DELIVERED,
}  # "relayed" and "expanded" say nothing of the mailbox


def read_report(data: bytes, now: datetime) -> list[ProviderEvent]:
    # compat32 (the default): flufl.bounce's detectors take an email.message.Message.
    mail = email.message_from_bytes(data)
    report_id = _value(mail.get("Message-ID"), 200)
    summary = {"from": _value(mail.get("From")), "subject": _value(mail.get("Subject"))}
    if mail.get_content_type() == "multipart/report":
        report_type = str(mail.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            found = _delivery_status(mail, summary)
        elif report_type == "feedback-report":
            found = _feedback(mail, summary)
        else:
            found = []
        if found:
            return [_event(entry, now, report_id) for entry in found[:MAX_RECIPIENTS]]
    return [_event(entry, now, report_id) for entry in _detected(mail, summary)]


def _event(entry: dict[str, Any], now: datetime, report_id: str | None) -> ProviderEvent:
    return ProviderEvent(
        kind=entry["kind"],
        source=EventSource.SMTP,
        occurred_at=now,
        raw=entry["raw"],
        recipient=entry.get("recipient"),
        # A report sent again (the reporting server retried after losing our reply) is one.
        provider_event_id=report_id,
        bounce_type=entry.get("bounce_type"),
        diagnostic=entry.get("diagnostic"),
    )


def _report_part(mail: Message, content_type: str) -> list[Message]:
    """The field blocks of the report's machine-readable part (RFC 6522: the second part)."""
    parts = mail.get_payload()
    if not isinstance(parts, list):
        return []
    for part in parts:
        if isinstance(part, Message) and part.get_content_type() == content_type:
            blocks = part.get_payload()
            if isinstance(blocks, list):
                return [b for b in blocks if isinstance(b, Message)]
    return []


def _delivery_status(mail: Message, summary: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _report_part(mail, "message/delivery-status")
    if len(blocks) < 2:
        return []
    per_message = _fields(blocks[0])
    found = []
    for block in blocks[1 : MAX_RECIPIENTS + 1]:
        kind = _ACTIONS.get(_first_word(block.get("Action")))
        if kind is None:
            continue
        status = _first_word(block.get("Status"))
        diagnostic = _value(block.get("Diagnostic-Code"), MAX_VALUE) or status or None
        entry: dict[str, Any] = {
            "kind": kind,
            # Original-Recipient is the address as we gave it (RCPT's ORCPT); Final-Recipient
            # may be where a forward took it.
            "recipient": _typed_address(block.get("Original-Recipient"))
            or _typed_address(block.get("Final-Recipient")),
            "diagnostic": diagnostic,
            "raw": {
                **summary,
                "reportType": "delivery-status",
                "perMessage": per_message,
                "perRecipient": _fields(block),
            },
        }
        if kind == EventKind.BOUNCED:
            # RFC 3463: class 4 is persistent transient, 5 permanent; "failed" without a
            # readable status is a permanent failure by RFC 3464's definition of the action.
            entry["bounce_type"] = BounceType.SOFT if status.startswith("4.") else BounceType.HARD
        found.append(entry)
    return found


def _feedback(mail: Message, summary: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _report_part(mail, "message/feedback-report")
    if not blocks:
        return []
    report = blocks[0]
    feedback_type = _first_word(report.get("Feedback-Type"))
    if not feedback_type or feedback_type in _NOT_COMPLAINTS:
        return []
    raw = {**summary, "reportType": "feedback-report", "feedbackReport": _fields(report)}
    # Original-Rcpt-To is optional (and often redacted): then the complaint names no one.
    recipients: list[str | None] = [
        address
        for value in (report.get_all("Original-Rcpt-To") or [])[:MAX_RECIPIENTS]
        if (address := _address(value))
    ]
    return [
        {"kind": EventKind.COMPLAINED, "recipient": r, "diagnostic": feedback_type, "raw": raw}
        for r in recipients or [None]
    ]


def _detected(mail: Message, summary: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        temporary, permanent = all_failures(mail)
    except Exception:  # a detector's bug on odd input must not refuse the report
        log.warning("a bounce detector failed on a received report", exc_info=True)
        return []
    raw = {**summary, "reportType": "detected"}
    found: list[dict[str, Any]] = []
    for addresses, bounce_type in ((permanent, BounceType.HARD), (temporary, BounceType.SOFT)):
        for value in sorted(addresses)[:MAX_RECIPIENTS]:
            address = _address(value.decode("utf-8", "replace"))
            if address:
                found.append(
                    {
                        "kind": EventKind.BOUNCED,
                        "recipient": address,
                        "bounce_type": bounce_type,
                        "raw": raw,
                    }
                )
    return found[:MAX_RECIPIENTS]


def _value(value: object, limit: int = MAX_VALUE) -> str | None:
    """A header's value on one line, storable; None if absent or empty."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return storable(text, limit) if text else None


def _first_word(value: object) -> str:
    """The value before any comment or parameter ("failed (mailbox full)" → "failed")."""
    words = (_value(value, 200) or "").replace("(", " ").replace(";", " ").split(maxsplit=1)
    return words[0].lower() if words else ""


def _typed_address(value: object) -> str | None:
    """The address of an RFC 3464 recipient field (`rfc822; user@example.com`); None for an
    address type that is no mail address."""
    text = _value(value, 400)
    if text is None:
        return None
    address_type, semicolon, address = text.partition(";")
    if not semicolon or address_type.strip().lower() not in {"rfc822", "utf-8"}:
        return None
    return _address(address)


def _address(value: str) -> str | None:
    address = value.strip().removeprefix("<").removesuffix(">").strip()
    if not 3 <= len(address) <= 254 or "@" not in address or any(c.isspace() for c in address):
        return None
    return storable(address, 254)


def _fields(block: Message) -> dict[str, str]:
    """A report part's fields for `raw` (repeated ones joined), bounded in number and size."""
    kept: dict[str, str] = {}
    for name, value in block.items()[:MAX_FIELDS]:
        key = storable(name, MAX_NAME)
        text = _value(value) or ""
        kept[key] = f"{kept[key]}, {text}"[:MAX_VALUE] if key in kept else text
    return kept
