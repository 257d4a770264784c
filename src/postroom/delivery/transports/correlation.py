"""What ties a provider's later events to the message, both ways: postroom's id and the message's
`metadata` go out as the provider's custom data (each transport fits them to its provider's
limits), and the provider's own id for what it accepted comes back in its answer.

A provider's answer is untrusted: an id is kept only when it is 1 to 255 printable ASCII
characters (the column's size; no space, control or NUL), otherwise the attempt records none.
A cut id would never match the provider's events anyway.
"""

import json
import re
from collections.abc import Iterator

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.transports.base import MESSAGE_ID_KEY

MAX_PROVIDER_ID = 255  # delivery_attempts.provider_message_id
_PROVIDER_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_PROVIDER_ID}}}")

# The queue id in the reply to the end of DATA, where the server gives one: Postfix "250 2.0.0
# Ok: queued as 4Bxyz1Abc", Exim "250 OK id=1tAbCd-000Xyz-Ab". Others (sendmail's "Message
# accepted for delivery", Exchange's "Queued mail for delivery") name none we can rely on.
_QUEUE_ID = re.compile(
    r"\bqueued as:? ([0-9A-Za-z]{1,64})(?![0-9A-Za-z])|\bid=([0-9A-Za-z-]{1,64})(?![0-9A-Za-z-])",
    re.IGNORECASE,
)
_SCANNED = 1000  # characters of a reply looked at: an id comes early, a hostile line is long


def custom_data(message: OutgoingMessage) -> Iterator[tuple[str, str]]:
    """postroom's id first (so that a provider's limits leave it out last, never), then the
    message's metadata in its own order; a metadata entry under postroom's key is left out."""
    yield MESSAGE_ID_KEY, message.id
    for key, value in message.metadata.items():
        if key != MESSAGE_ID_KEY:
            yield key, value


def provider_id(value: object) -> str | None:
    """`value` as a provider message id to record, or None if it is not one worth keeping."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _PROVIDER_ID.fullmatch(value) else None


def json_field(body: str, name: str) -> object:
    """The top-level field `name` of a JSON object body, or None (not JSON, cut, not an object)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        return None
    return document.get(name) if isinstance(document, dict) else None


def without_brackets(value: object) -> object:
    """`<id@domain>` as `id@domain`: Mailgun answers with the brackets, its events carry none."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("<") and value.endswith(">"):
            return value[1:-1]
    return value


def smtp_queue_id(reply: str) -> str | None:
    """The queue id an SMTP server named in its reply to the end of DATA, if any."""
    found = _QUEUE_ID.search(reply[:_SCANNED])
    if found is None:
        return None
    return provider_id(found.group(1) or found.group(2))
