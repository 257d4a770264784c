"""Mailgun's messages API: POST /v3/{domain}/messages as a form (multipart with attachments),
HTTP Basic auth `api:<API key>`, on the US or EU base URL as the domain's region says."""

import base64
from typing import Any
from urllib.parse import quote

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.base import Receipt
from postroom.delivery.transports.http import (
    HttpLimits,
    classify,
    display_address,
    new_client,
    one_line,
    post,
    read_attachments,
)


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
        return classify(answer)

    async def aclose(self) -> None:
        await self._client.aclose()


def form_fields(message: OutgoingMessage) -> dict[str, Any]:
    """Repeated fields for several recipients; `v:` is a user variable Mailgun keeps with the
    message and returns in its events, so they can be matched to ours."""
    fields: dict[str, Any] = {
        "from": display_address(message.sender, message.sender_name),
        "to": list(message.to),
        "subject": one_line(message.subject),
        "v:postroom-message-id": message.id,
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


def form_files(
    files: list[tuple[AttachmentFile, bytes]],
) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("attachment", (attachment.filename, data, attachment.content_type))
        for attachment, data in files
    ]
