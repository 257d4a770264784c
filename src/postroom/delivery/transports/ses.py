"""Amazon SES API v2 SendEmail: POST /v2/email/outbound-emails with the message as raw MIME
(built like SMTP's, attachments included), signed with AWS Signature Version 4 by botocore."""

import asyncio
import json
import re
from dataclasses import replace
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from postroom.delivery.mime import OutgoingMessage, build_mime
from postroom.delivery.transports.base import PermanentError, Receipt
from postroom.delivery.transports.correlation import custom_data, json_field, provider_id
from postroom.delivery.transports.http import (
    HttpLimits,
    base64_text,
    classify,
    new_client,
    post,
)

PATH = "/v2/email/outbound-emails"
SERVICE = "ses"  # the signing name of SES, API v1 and v2 alike
# A message tag's name and value: only ASCII letters, digits, "_" and "-", at most 256 characters
# (SES API v2 reference, MessageTag). 50 tags at most is our own bound, not a documented one.
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_TAGS = 50


class SesTransport:
    name = "aws-ses"

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        region: str,
        endpoint: str,
        limits: HttpLimits,
        configuration_set: str | None = None,
    ) -> None:
        self.limits = limits
        self.configuration_set = configuration_set
        self.url = endpoint.format(region=region).rstrip("/") + PATH
        self._signer = SigV4Auth(Credentials(access_key, secret_key), SERVICE, region)
        self._client = new_client(endpoint.format(region=region), limits)

    async def send(self, message: OutgoingMessage) -> Receipt:
        try:
            raw = await asyncio.to_thread(build_mime, message)
        except OSError as error:
            raise PermanentError(f"cannot read an attachment: {error.strerror}") from None
        content = json.dumps(request_body(message, raw, self.configuration_set)).encode()
        answer = await post(
            self._client, self.url, self.limits, content=content, headers=self._signed(content)
        )
        # The kind of error (MessageRejected, MailFromDomainNotVerifiedException, …) is in a
        # header, the body only says {"message": …}: both are kept.
        kind = answer.headers.get("x-amzn-errortype", "").partition(":")[0]
        receipt = classify(answer, text=f"{kind}: {answer.body}" if kind else None)
        # The id SES's events (through SNS) carry as mail.messageId.
        return replace(
            receipt, provider_message_id=provider_id(json_field(answer.body, "MessageId"))
        )

    def _signed(self, content: bytes) -> dict[str, str]:
        """The headers of a SigV4-signed request: Content-Type, X-Amz-Date and Authorization
        (Host, also signed, is the one httpx sends for the same URL)."""
        request = AWSRequest(
            method="POST",
            url=self.url,
            data=content,
            headers={"Content-Type": "application/json"},
        )
        self._signer.add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    async def aclose(self) -> None:
        await self._client.aclose()


def request_body(
    message: OutgoingMessage, raw: bytes, configuration_set: str | None
) -> dict[str, Any]:
    # Bcc is in no header of the raw message, so the destination lists every recipient.
    destination: dict[str, list[str]] = {"ToAddresses": list(message.to)}
    if message.cc:
        destination["CcAddresses"] = list(message.cc)
    if message.bcc:
        destination["BccAddresses"] = list(message.bcc)
    body: dict[str, Any] = {
        "FromEmailAddress": message.sender,
        "Destination": destination,
        # The raw message carries the stable Message-ID header (mime.py) like any other.
        "Content": {"Raw": {"Data": base64_text(raw)}},
        "EmailTags": email_tags(message),
    }
    if configuration_set:
        body["ConfigurationSetName"] = configuration_set
    return body


def email_tags(message: OutgoingMessage) -> list[dict[str, str]]:
    """postroom's id and the metadata entries whose name and value both keep to SES's
    characters, unchanged, in order; the others are left out (a value rewritten to fit would
    come back in events as something the message never had)."""
    return [
        {"Name": name, "Value": value}
        for name, value in custom_data(message)
        if TAG_TEXT.fullmatch(name) and TAG_TEXT.fullmatch(value)
    ][:MAX_TAGS]
