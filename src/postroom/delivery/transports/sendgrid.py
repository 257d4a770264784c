"""SendGrid's v3 mail send API: POST /v3/mail/send, JSON, `Authorization: Bearer <API key>`;
202 with an empty body and an X-Message-Id header when accepted."""

import json
from dataclasses import replace
from typing import Any

import httpx

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.base import Receipt
from postroom.delivery.transports.correlation import custom_data, provider_id
from postroom.delivery.transports.http import (
    HttpLimits,
    base64_text,
    classify,
    new_client,
    one_line,
    post,
    read_attachments,
    seconds_until,
)

PATH = "/v3/mail/send"
# custom_args: string values, all of them together under 10,000 bytes (SendGrid's "Unique
# Arguments" and Mail Send reference, docs.sendgrid.com / twilio.com/docs/sendgrid).
CUSTOM_ARGS_BYTES = 10_000


class SendGridTransport:
    name = "sendgrid"

    def __init__(self, api_key: str, base_url: str, limits: HttpLimits) -> None:
        self.limits = limits
        self._client = new_client(base_url, limits, headers={"Authorization": f"Bearer {api_key}"})

    async def send(self, message: OutgoingMessage) -> Receipt:
        files = await read_attachments(message.attachments)
        answer = await post(self._client, PATH, self.limits, json=request_body(message, files))
        # An accepted message comes back with an empty body; its id is in a header.
        text = answer.body
        if not text and "x-message-id" in answer.headers:
            text = f"X-Message-Id: {answer.headers['x-message-id']}"
        receipt = classify(answer, text=text, retry_after=_rate_limit_reset(answer.headers))
        # The id SendGrid's events carry as the start of `sg_message_id`.
        return replace(receipt, provider_message_id=provider_id(answer.headers.get("x-message-id")))

    async def aclose(self) -> None:
        await self._client.aclose()


def request_body(
    message: OutgoingMessage, files: list[tuple[AttachmentFile, bytes]]
) -> dict[str, Any]:
    # SendGrid refuses a personalization that names one address twice across to, cc and bcc,
    # and empty cc/bcc arrays: each address is kept once, where it first appears.
    seen: set[str] = set()

    def once(addresses: tuple[str, ...]) -> list[dict[str, str]]:
        kept = []
        for address in addresses:
            if address.lower() not in seen:
                seen.add(address.lower())
                kept.append({"email": address})
        return kept

    personalization: dict[str, Any] = {"to": once(message.to)}
    for field, addresses in (("cc", message.cc), ("bcc", message.bcc)):
        if listed := once(addresses):
            personalization[field] = listed
    sender: dict[str, str] = {"email": message.sender}
    if message.sender_name:
        sender["name"] = one_line(message.sender_name)
    # Each content value must be at least one character, text/plain first.
    content = [
        {"type": kind, "value": value}
        for kind, value in (("text/plain", message.text), ("text/html", message.html))
        if value
    ] or [{"type": "text/plain", "value": " "}]
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": sender,
        "subject": one_line(message.subject),
        "content": content,
        "custom_args": custom_args(message),
        # Stable across attempts (mime.py); SendGrid keeps a Message-ID given in `headers`.
        "headers": {**message.headers, "Message-ID": message.message_id_header},
    }
    if message.reply_to:
        body["reply_to_list"] = [{"email": address} for address in message.reply_to]
    if files:
        body["attachments"] = [
            {
                "content": base64_text(data),
                "type": attachment.content_type,
                "filename": attachment.filename,
                "disposition": "attachment",
            }
            for attachment, data in files
        ]
    return body


def custom_args(message: OutgoingMessage) -> dict[str, str]:
    """postroom's id and the metadata, each entry kept while the whole stays within SendGrid's
    size (as the JSON it is sent as); the id comes first, so it always fits."""
    kept: dict[str, str] = {}
    for key, value in custom_data(message):
        candidate = {**kept, key: value}
        if len(json.dumps(candidate, ensure_ascii=False).encode()) < CUSTOM_ARGS_BYTES:
            kept = candidate
    return kept


def _rate_limit_reset(headers: httpx.Headers) -> float | None:
    """SendGrid answers a 429 with X-RateLimit-Reset (a Unix time), not Retry-After."""
    reset = headers.get("x-ratelimit-reset", "").strip()
    return seconds_until(float(reset), headers) if reset.isdigit() else None
