"""Mailgun's messages API: POST /v3/{domain}/messages as a form (multipart with attachments),
HTTP Basic auth `api:<API key>`, on the US or EU base URL as the domain's region says."""

import base64
import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.base import Receipt
from postroom.delivery.transports.correlation import (
    custom_data,
    json_field,
    provider_id,
    without_brackets,
)
from postroom.delivery.transports.http import (
    HttpLimits,
    classify,
    display_address,
    new_client,
    one_line,
    post,
    read_attachments,
)

# Parameters starting with o:, h: or v: are limited to 16 kB in all (Mailgun's answer to more:
# "Send options (parameters starting with o:, h:, or v:) are limited to 16 kB total"); the
# variables get what h:Message-Id leaves.
SEND_OPTIONS_BYTES = 16_000


class MailgunTransport:
    name = "mailgun"

    def __init__(self, api_key: str, domain: str, base_url: str, limits: HttpLimits) -> None:
        self.limits = limits
        self.path = f"/v3/{quote(domain, safe='')}/messages"
        token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")
        self._client = new_client(base_url, limits, headers={"Authorization": f"Basic {token}"})

    async def send(self, message: OutgoingMessage) -> Receipt:
        files = await read_attachments(message.attachments)
        answer = await post(
            self._client,
            self.path,
            self.limits,
            data=form_fields(message),
            files=form_files(files),
        )
        receipt = classify(answer)
        # `<id@domain>`; its events carry it as message.headers.message-id, without brackets.
        found = without_brackets(json_field(answer.body, "id"))
        return replace(receipt, provider_message_id=provider_id(found))

    async def aclose(self) -> None:
        await self._client.aclose()


def form_fields(message: OutgoingMessage) -> dict[str, Any]:
    """Repeated fields for several recipients; `v:` is a user variable Mailgun keeps with the
    message and returns in its events (`user-variables`), so they can be matched to ours."""
    headers = {f"h:{name}": value for name, value in message.headers.items()}
    if message.reply_to:
        headers["h:Reply-To"] = ", ".join(message.reply_to)
    # Stable across attempts (mime.py); Mailgun sends the message with it.
    headers["h:Message-Id"] = message.message_id_header
    room = SEND_OPTIONS_BYTES - sum(_size(name, value) for name, value in headers.items())
    fields: dict[str, Any] = {
        "from": display_address(message.sender, message.sender_name),
        "to": list(message.to),
        "subject": one_line(message.subject),
        **headers,
        **variables(message, room),
    }
    if message.cc:
        fields["cc"] = list(message.cc)
    if message.bcc:
        fields["bcc"] = list(message.bcc)
    # Mailgun needs a text or an html part; an empty html alone would not count.
    if message.text or not message.html:
        fields["text"] = message.text or " "
    if message.html:
        fields["html"] = message.html
    return fields


def variables(message: OutgoingMessage, room: int) -> dict[str, str]:
    """postroom's id and the metadata as `v:` fields, each within `room` bytes in all, in order
    (the id first, so it always fits). Mailgun takes a `v:` value as JSON data (its messages
    API reference), so each goes as a JSON string: "42" comes back "42", not the number 42."""
    kept: dict[str, str] = {}
    for key, value in custom_data(message):
        name, encoded = f"v:{key}", json.dumps(value, ensure_ascii=False)
        if _size(name, encoded) <= room:
            kept[name] = encoded
            room -= _size(name, encoded)
    return kept


def _size(name: str, value: str) -> int:
    return len(name.encode()) + len(value.encode())


def form_files(
    files: list[tuple[AttachmentFile, bytes]],
) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("attachment", (attachment.filename, data, attachment.content_type))
        for attachment, data in files
    ]
