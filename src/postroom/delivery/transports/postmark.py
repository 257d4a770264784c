"""Postmark's email API: POST /email, JSON, `X-Postmark-Server-Token: <server API token>`;
200 with `{"ErrorCode": 0, "Message": "OK", "MessageID": …}` when accepted."""

from dataclasses import replace
from typing import Any

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.base import Receipt
from postroom.delivery.transports.correlation import custom_data, json_field, provider_id
from postroom.delivery.transports.http import (
    HttpLimits,
    base64_text,
    classify,
    display_address,
    new_client,
    one_line,
    post,
    read_attachments,
)

PATH = "/email"
# Custom metadata: at most 10 fields, names up to 20 characters, values up to 80, no two names
# differing only in case (postmarkapp.com/support/article/1125-custom-metadata-faq).
METADATA_FIELDS = 10
METADATA_NAME = 20
METADATA_VALUE = 80


class PostmarkTransport:
    name = "postmark"

    def __init__(self, server_token: str, base_url: str, limits: HttpLimits) -> None:
        self.limits = limits
        self._client = new_client(
            base_url,
            limits,
            headers={"X-Postmark-Server-Token": server_token, "Accept": "application/json"},
        )

    async def send(self, message: OutgoingMessage) -> Receipt:
        files = await read_attachments(message.attachments)
        answer = await post(self._client, PATH, self.limits, json=request_body(message, files))
        receipt = classify(answer)
        return replace(
            receipt, provider_message_id=provider_id(json_field(answer.body, "MessageID"))
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def request_body(
    message: OutgoingMessage, files: list[tuple[AttachmentFile, bytes]]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "From": display_address(message.sender, message.sender_name),
        # Postmark takes recipients as one comma-separated string per field.
        "To": ", ".join(message.to),
        "Subject": one_line(message.subject),
        "MessageStream": "outbound",
        "Metadata": metadata(message),
        # Stable across attempts (mime.py), for receivers to drop a retried duplicate.
        "Headers": [
            *({"Name": name, "Value": value} for name, value in message.headers.items()),
            {"Name": "Message-ID", "Value": message.message_id_header},
        ],
    }
    if message.reply_to:
        body["ReplyTo"] = ", ".join(message.reply_to)
    if message.cc:
        body["Cc"] = ", ".join(message.cc)
    if message.bcc:
        body["Bcc"] = ", ".join(message.bcc)
    # Postmark needs TextBody or HtmlBody or both.
    if message.text or not message.html:
        body["TextBody"] = message.text or " "
    if message.html:
        body["HtmlBody"] = message.html
    if files:
        body["Attachments"] = [
            {
                "Name": attachment.filename,
                "Content": base64_text(data),
                "ContentType": attachment.content_type,
            }
            for attachment, data in files
        ]
    return body


def metadata(message: OutgoingMessage) -> dict[str, str]:
    """postroom's id and the metadata entries that fit Postmark's limits, in order, up to its
    number of fields; what does not fit is left out (the id always fits and comes first)."""
    kept: dict[str, str] = {}
    names: set[str] = set()
    for name, value in custom_data(message):
        if len(kept) == METADATA_FIELDS:
            break
        if (
            len(name) <= METADATA_NAME
            and len(value) <= METADATA_VALUE
            and name.lower() not in names
        ):
            kept[name] = value
            names.add(name.lower())
    return kept
