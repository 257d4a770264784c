"""Postmark's email API: POST /email, JSON, `X-Postmark-Server-Token: <server API token>`;
200 with `{"ErrorCode": 0, "Message": "OK", "MessageID": …}` when accepted."""

from typing import Any

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.base import Receipt
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
        return classify(answer)

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
        "Metadata": {"postroom_message_id": message.id},
    }
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
