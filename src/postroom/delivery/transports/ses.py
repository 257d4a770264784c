"""Amazon SES API v2 SendEmail: POST /v2/email/outbound-emails with the message as raw MIME
(built like SMTP's, attachments included), signed with AWS Signature Version 4 by botocore."""

import asyncio
import json
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from postroom.delivery.mime import OutgoingMessage, build_mime
from postroom.delivery.transports.base import PermanentError, Receipt
from postroom.delivery.transports.http import (
    HttpLimits,
    base64_text,
    classify,
    new_client,
    post,
)

PATH = "/v2/email/outbound-emails"
SERVICE = "ses"  # the signing name of SES, API v1 and v2 alike


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
        return classify(answer, text=f"{kind}: {answer.body}" if kind else None)

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
        "Content": {"Raw": {"Data": base64_text(raw)}},
        "EmailTags": [{"Name": "postroom_message_id", "Value": message.id}],
    }
    if configuration_set:
        body["ConfigurationSetName"] = configuration_set
    return body
