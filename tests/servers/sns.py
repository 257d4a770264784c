"""An Amazon SNS look-alike on 127.0.0.1, over https with a trustme certificate for
"localhost": it serves the signing certificate at its SigningCertURL and answers subscription
confirmations (the SubscribeURL), recording every request; and it signs messages the way SNS
does (SignatureVersion 1, SHA1withRSA, or 2, SHA256withRSA, over the canonical string)."""

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers.http import serve_in_thread

HOST = "localhost"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
CERTIFICATE_PATH = "/SimpleNotificationService-0000000000000000000000.pem"

# What SNS signs, in order, per message type (AWS: "Verifying the signatures of Amazon SNS
# messages"); written out here again so that the test does not take the code's word for it.
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


@dataclass(frozen=True)
class SnsRequest:
    path: str
    query: str


class SnsServer:
    def __init__(self, ca: trustme.CA, ca_file: Path) -> None:
        self.ca_file = ca_file
        signing = ca.issue_cert("sns.amazonaws.com", key_type=trustme.KeyType.RSA)
        self.certificate_pem = signing.cert_chain_pems[0].bytes()
        self.key = _rsa_key(signing.private_key_pem.bytes())
        self.base_url = ""  # https://localhost:<port>
        self._lock = threading.Lock()
        self._requests: list[SnsRequest] = []
        self.files: dict[str, bytes] = {CERTIFICATE_PATH: self.certificate_pem}
        """What GET answers with 200, by path (tests add their own)."""

    @property
    def certificate_url(self) -> str:
        return self.base_url + CERTIFICATE_PATH

    def subscribe_url(self, base_url: str | None = None) -> str:
        return (base_url or self.base_url) + (
            f"/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token=2336412f37fb687f5d51e6e2"
        )

    def requests(self, path: str | None = None) -> list[SnsRequest]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    async def _record(self, request: Request) -> Response:
        with self._lock:
            self._requests.append(SnsRequest(request.url.path, request.url.query))
        served = self.files.get(request.url.path)
        if served is not None:
            return Response(served, media_type="application/x-pem-file")
        if request.query_params.get("Action") == "ConfirmSubscription":
            return Response(
                "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
                f"{TOPIC_ARN}:1</SubscriptionArn></ConfirmSubscriptionResult>"
                "</ConfirmSubscriptionResponse>",
                media_type="text/xml",
            )
        return Response(status_code=404)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._record, methods=["GET"])])


def _rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(
    fields: dict[str, str], key: rsa.RSAPrivateKey, certificate_url: str, *, version: str = "2"
) -> dict[str, str]:
    """`fields` with SignatureVersion, Signature and SigningCertURL added, as SNS sends them."""
    names = _NOTIFICATION_FIELDS if fields["Type"] == "Notification" else _CONFIRMATION_FIELDS
    canonical = "".join(f"{n}\n{fields[n]}\n" for n in names if n in fields).encode()
    # SignatureVersion 1 is SHA1withRSA: SNS still signs with it unless a topic asks for 2.
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = key.sign(canonical, padding.PKCS1v15(), algorithm)
    return {
        **fields,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": certificate_url,
    }


def sns_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def notification(record: dict[str, Any], timestamp: datetime) -> dict[str, str]:
    """An unsigned Notification carrying `record` (an SES event) as its Message."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": json.dumps(record),
        "Timestamp": sns_time(timestamp),
        "UnsubscribeURL": f"https://{HOST}/?Action=Unsubscribe",
    }


def subscription_confirmation(subscribe_url: str, timestamp: datetime) -> dict[str, str]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2",
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_time(timestamp),
    }


@contextmanager
def sns_server(tmp_path: Path) -> Iterator[SnsServer]:
    ca = trustme.CA()
    ca_file = tmp_path / "sns-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls_pem = tmp_path / "sns-server.pem"
    ca.issue_cert(HOST).private_key_and_cert_chain_pem.write_to_path(str(tls_pem))
    server = SnsServer(ca, ca_file)
    with serve_in_thread(server.app(), tls_pem=str(tls_pem)) as url:
        server.base_url = url.replace("127.0.0.1", HOST)
        yield server
