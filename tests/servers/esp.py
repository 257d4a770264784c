"""Look-alike servers of the email service providers, served on 127.0.0.1 by a real uvicorn.

Each checks a request the way its provider does (path, authentication, body shape; the SES one
verifies the AWS Signature Version 4 with botocore) and answers with the provider's own success
and error documents. `script()` queues answers for the next valid requests, as the SMTP server's
does for DATA; a request the provider would refuse is refused whatever is scripted.
"""

import asyncio
import base64
import binascii
import email
import email.policy
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers.http import serve_in_thread


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = b""
    """bytes as they are; anything else as JSON."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0
    """Seconds to wait before answering (to let a client time out)."""

    def response(self) -> Response:
        if isinstance(self.body, bytes):
            content, media = self.body, "text/plain"
        else:
            content, media = json.dumps(self.body).encode(), "application/json"
        # One Date, the scripted one if any: a provider's rate-limit reset is read against it.
        headers = {"Date": formatdate(usegmt=True), **self.headers}
        return Response(content, status_code=self.status, headers=headers, media_type=media)


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class EspRequest:
    """One request a look-alike server accepted, as it arrived and as the provider reads it."""

    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    arrived: float
    """time.monotonic() when the request arrived."""
    json: Any = None
    form: list[tuple[str, str]] = field(default_factory=list)
    files: list[Upload] = field(default_factory=list)
    mime: EmailMessage | None = None
    """SES: the raw message, parsed."""

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class EspServer:
    """What a look-alike server received and the answers it is scripted to give. Written from
    the server's thread, read from the test's; every access takes the lock."""

    def __init__(self) -> None:
        self.url = ""
        self._lock = threading.Lock()
        self._received: list[EspRequest] = []
        self._answers: deque[Answer] = deque()
        self._refusals = 0
        self._issued: list[str] = []
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def received(self) -> list[EspRequest]:
        """The valid requests (accepted or answered as scripted), in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def refusals(self) -> int:
        """Requests refused for what they were (bad auth, bad shape)."""
        with self._lock:
            return self._refusals

    @property
    def issued_ids(self) -> list[str]:
        """The message ids its own successes gave, in order (scripted answers not included)."""
        with self._lock:
            return list(self._issued)

    def _issue(self, message_id: str) -> str:
        with self._lock:
            self._issued.append(message_id)
        return message_id

    def script(self, *answers: Answer) -> None:
        """Answers for the next valid requests, one each; then the provider's success."""
        with self._lock:
            self._answers.extend(answers)

    async def wait_for(self, count: int, timeout: float = 10) -> list[EspRequest]:
        loop = asyncio.get_running_loop()
        waiter = (count, loop, loop.create_future())
        with self._lock:
            if len(self._received) >= count:
                return list(self._received)
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[2]
        except TimeoutError:
            got = len(self.received)
            raise TimeoutError(f"{got} of {count} requests arrived within {timeout}s") from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.received

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])

    # The provider's side, in the server's thread.

    def accept(self, request: EspRequest) -> Answer:
        raise NotImplementedError

    async def check(self, request: Request, received: EspRequest) -> None:
        """Raises _Refused with the provider's answer to a request it would not take."""
        raise NotImplementedError

    async def _handle(self, request: Request) -> Response:
        arrived = time.monotonic()
        body = await request.body()
        received = EspRequest(
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            arrived=arrived,
        )
        try:
            await self.check(request, received)
        except _Refused as refused:
            with self._lock:
                self._refusals += 1
            return refused.answer.response()
        with self._lock:
            answer = self._answers.popleft() if self._answers else None
        if answer is None:
            answer = self.accept(received)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        self._record(received)
        return answer.response()

    def _record(self, received: EspRequest) -> None:
        with self._lock:
            self._received.append(received)
            arrived = len(self._received)
            ready = [w for w in self._waiters if w[0] <= arrived]
            for waiter in ready:
                self._waiters.remove(waiter)
        for _, loop, future in ready:
            with suppress(RuntimeError):  # the test's loop may be gone if it gave up
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _json_body(received: EspRequest, refuse: Answer) -> Any:
    try:
        return json.loads(received.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Refused(refuse) from None


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return False
    return True


def _looks_like_address(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value) is not None


def _parse_form(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], list[Upload]]:
    """A form as Mailgun reads it: urlencoded, or multipart/form-data parsed with the standard
    library's email parser (a multipart body is a MIME entity under its Content-Type)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(body.decode(), keep_blank_values=True), []
    entity = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: list[tuple[str, str]] = []
    uploads: list[Upload] = []
    for part in entity.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        filename = part.get_filename()
        if filename is None:
            fields.append((name, payload.decode()))
        else:
            uploads.append(Upload(name, filename, part.get_content_type(), payload))
    return fields, uploads


# SendGrid: POST /v3/mail/send, Bearer API key, JSON; 202 with an empty body and X-Message-Id.


class SendGridServer(EspServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    @staticmethod
    def error(
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        return Answer(
            status, {"errors": [{"message": message, "field": field, "help": None}]}, headers or {}
        )

    def accept(self, request: EspRequest) -> Answer:
        # As SendGrid's: 22 URL-safe characters, the start of its events' sg_message_id.
        return Answer(202, b"", {"X-Message-Id": self._issue(secrets.token_urlsafe(16))})

    async def check(self, request: Request, received: EspRequest) -> None:
        if received.path != "/v3/mail/send":
            raise _Refused(self.error(404, "Not Found"))
        if received.headers.get("authorization") != f"Bearer {self.api_key}":
            raise _Refused(
                self.error(401, "The provided authorization grant is invalid, expired, or revoked")
            )
        if not received.headers.get("content-type", "").startswith("application/json"):
            raise _Refused(self.error(415, "Content-Type should be application/json."))
        body = _json_body(received, self.error(400, "Bad Request"))
        received.json = body
        problems = list(_sendgrid_problems(body))
        if problems:
            raise _Refused(
                Answer(
                    400,
                    {"errors": [{"message": m, "field": f, "help": None} for f, m in problems]},
                )
            )


def _sendgrid_problems(body: Any) -> Iterator[tuple[str | None, str]]:
    if not isinstance(body, dict):
        yield None, "Bad Request"
        return
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        yield (
            "personalizations",
            "The personalizations field is required and must have at least one personalization.",
        )
        return
    for n, personalization in enumerate(personalizations):
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            if kind not in personalization:
                continue
            people = personalization[kind]
            if not isinstance(people, list) or not people:
                yield (
                    f"personalizations.{n}.{kind}",
                    f"The {kind} array must have at least one item.",
                )
                continue
            for person in people:
                address = str(person.get("email")) if isinstance(person, dict) else ""
                if not _looks_like_address(address):
                    yield f"personalizations.{n}.{kind}", "Does not contain a valid address."
                elif address.lower() in seen:
                    yield (
                        f"personalizations.{n}.{kind}",
                        "Each email address in the personalization block should be unique "
                        f"between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{address}] in the personalizations.{n}.{kind} field.",
                    )
                else:
                    seen.add(address.lower())
        if "to" not in personalization:
            yield (
                f"personalizations.{n}.to",
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address.",
            )
    sender = body.get("from")
    if not isinstance(sender, dict) or not _looks_like_address(sender.get("email")):
        yield "from.email", "The from email does not contain a valid address."
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        yield (
            "subject",
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject defined.",
        )
    content = body.get("content")
    if not isinstance(content, list) or not content:
        yield (
            "content",
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block.",
        )
    else:
        kinds = [c.get("type") for c in content]
        if "text/plain" in kinds and kinds[0] != "text/plain":
            yield (
                "content",
                "If present, text/plain content must be first, followed by any other content.",
            )
        for n, part in enumerate(content):
            if not isinstance(part.get("value"), str) or not part["value"]:
                yield (
                    f"content.{n}.value",
                    "The content value must be a string at least one character in length.",
                )
    yield from _sendgrid_custom_problems(body)
    for n, attachment in enumerate(body.get("attachments") or []):
        if not _is_base64(attachment.get("content")):
            yield f"attachments.{n}.content", "The attachment content must be base64 encoded."
        if not attachment.get("filename"):
            yield f"attachments.{n}.filename", "The attachment filename parameter is required."
        if attachment.get("disposition", "attachment") not in {"attachment", "inline"}:
            yield (
                f"attachments.{n}.disposition",
                "The disposition of your attachment must be either inline or attachment.",
            )


SENDGRID_CUSTOM_ARGS_BYTES = 10_000
SENDGRID_RESERVED_HEADERS = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}  # fmt: skip


def _sendgrid_custom_problems(body: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    """custom_args: string values, under 10,000 bytes in all; headers: strings, none reserved."""
    custom_args = body.get("custom_args", {})
    if not isinstance(custom_args, dict):
        yield "custom_args", "Invalid type. Expected: object, given: string."
    else:
        for key, value in custom_args.items():
            if not isinstance(value, str):
                yield f"custom_args.{key}", "Invalid type. Expected: string."
        if len(json.dumps(custom_args, ensure_ascii=False).encode()) >= SENDGRID_CUSTOM_ARGS_BYTES:
            yield "custom_args", "custom_args must be less than 10,000 bytes."
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        yield "headers", "Invalid type. Expected: object of strings."
    else:
        for name in headers:
            if name.lower() in SENDGRID_RESERVED_HEADERS:
                yield f"headers.{name}", f"The header {name} is reserved and cannot be set."


# Mailgun: POST /v3/{domain}/messages, Basic api:<key>, a form; 200 {"id", "message"}.


MAILGUN_SEND_OPTIONS_BYTES = 16_000


def mailgun_variables(request: EspRequest) -> dict[str, Any]:
    """The `v:` fields as Mailgun keeps them for its events' user-variables: JSON data where a
    value is JSON, else the text as it came."""
    variables: dict[str, Any] = {}
    for name, value in request.form:
        if name.startswith("v:"):
            try:
                variables[name[2:]] = json.loads(value)
            except ValueError:
                variables[name[2:]] = value
    return variables


class MailgunServer(EspServer):
    def __init__(self, api_key: str, domain: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.domain = domain

    @staticmethod
    def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Answer:
        return Answer(status, {"message": message}, headers or {})

    def accept(self, request: EspRequest) -> Answer:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        return Answer(
            200,
            {
                "id": f"<{self._issue(f'{stamp}.{secrets.token_hex(8)}@{self.domain}')}>",
                "message": "Queued. Thank you.",
            },
        )

    async def check(self, request: Request, received: EspRequest) -> None:
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if received.headers.get("authorization") != expected:
            raise _Refused(Answer(401, b"Forbidden"))
        match = re.fullmatch(r"/v3/([^/]+)/messages", received.path)
        if match is None:
            raise _Refused(Answer(404, b"404 page not found"))
        if match.group(1) != self.domain:
            raise _Refused(self.error(404, f"Domain not found: {match.group(1)}"))
        content_type = received.headers.get("content-type", "")
        if not content_type.startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            raise _Refused(self.error(400, "expected a form"))
        received.form, received.files = _parse_form(content_type, received.body)
        for name in ("from", "to", "subject"):
            if not received.values(name):
                raise _Refused(self.error(400, f"'{name}' parameter is missing"))
        if not (received.values("text") or received.values("html")):
            raise _Refused(
                self.error(
                    400, "Need at least one of 'text', 'html' or 'template' parameters specified"
                )
            )
        options = sum(
            len(name.encode()) + len(value.encode())
            for name, value in received.form
            if name.startswith(("o:", "h:", "v:"))
        )
        if options > MAILGUN_SEND_OPTIONS_BYTES:
            raise _Refused(
                self.error(
                    400,
                    "Send options (parameters starting with o:, h:, or v:) are limited to "
                    "16 kB total",
                )
            )
        for name in ("to", "cc", "bcc"):
            for value in received.values(name):
                if not all(_looks_like_address(a.strip()) for a in value.split(",")):
                    raise _Refused(
                        self.error(
                            400,
                            f"{name} parameter is not a valid address. please check documentation",
                        )
                    )


# Postmark: POST /email, X-Postmark-Server-Token, JSON; 200 {"ErrorCode": 0, "Message": "OK", …}.


class PostmarkServer(EspServer):
    MAX_RECIPIENTS = 50

    def __init__(self, server_token: str) -> None:
        super().__init__()
        self.server_token = server_token

    @staticmethod
    def error(
        status: int, error_code: int, message: str, *, headers: dict[str, str] | None = None
    ) -> Answer:
        return Answer(status, {"ErrorCode": error_code, "Message": message}, headers or {})

    def accept(self, request: EspRequest) -> Answer:
        return Answer(
            200,
            {
                "To": request.json["To"],
                "SubmittedAt": datetime.now(UTC).isoformat(),
                "MessageID": self._issue(str(uuid.uuid4())),
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    async def check(self, request: Request, received: EspRequest) -> None:
        if received.path != "/email":
            raise _Refused(self.error(404, 404, "Not found"))
        if received.headers.get("x-postmark-server-token") != self.server_token:
            raise _Refused(
                self.error(
                    401,
                    10,
                    "The Server Token you provided in the X-Postmark-Server-Token request header "
                    "was invalid. Please verify that you are using a valid token.",
                )
            )
        if not received.headers.get("content-type", "").startswith("application/json"):
            raise _Refused(self.error(415, 409, "JSON request required"))
        body = _json_body(received, self.error(400, 402, "Received invalid JSON input."))
        received.json = body
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("From"), str)
            or "@" not in body["From"]
        ):
            raise _Refused(
                self.error(422, 300, f"Invalid 'From' address: '{body.get('From', '')}'.")
            )
        recipients = [
            a.strip()
            for name in ("To", "Cc", "Bcc")
            for a in str(body.get(name) or "").split(",")
            if a.strip()
        ]
        if not body.get("To"):
            raise _Refused(self.error(422, 300, "Zero recipients specified"))
        if not all(_looks_like_address(a.rpartition("<")[2].rstrip(">")) for a in recipients):
            raise _Refused(self.error(422, 300, "Invalid 'To' address."))
        if len(recipients) > self.MAX_RECIPIENTS:
            raise _Refused(
                self.error(422, 300, "You can't send more than 50 recipients in one message.")
            )
        if not (body.get("TextBody") or body.get("HtmlBody")):
            raise _Refused(
                self.error(422, 300, "Provide either email TextBody or HtmlBody or both.")
            )
        problem = _postmark_custom_problem(body)
        if problem:
            raise _Refused(self.error(422, 300, problem))
        for attachment in body.get("Attachments") or []:
            if not (attachment.get("Name") and attachment.get("ContentType")):
                raise _Refused(
                    self.error(422, 300, "Attachment Name and ContentType are required.")
                )
            if not _is_base64(attachment.get("Content")):
                raise _Refused(self.error(422, 300, "Attachment content must be base64 encoded."))


POSTMARK_METADATA_FIELDS, POSTMARK_METADATA_NAME, POSTMARK_METADATA_VALUE = 10, 20, 80


def _postmark_custom_problem(body: dict[str, Any]) -> str | None:
    """Metadata: at most 10 string fields, names up to 20 characters and unique whatever their
    case, values up to 80; Headers: a list of {Name, Value} strings."""
    metadata = body.get("Metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return "Metadata must be an object of string values."
    if len(metadata) > POSTMARK_METADATA_FIELDS:
        return "Metadata can have at most 10 fields."
    if len({name.lower() for name in metadata}) != len(metadata):
        return "Metadata field names must be unique (case-insensitive)."
    for name, value in metadata.items():
        if len(name) > POSTMARK_METADATA_NAME or len(value) > POSTMARK_METADATA_VALUE:
            return f"Metadata field '{name[:20]}' is too long."
    headers = body.get("Headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and isinstance(h.get("Name"), str) and isinstance(h.get("Value"), str)
        for h in headers
    ):
        return "Headers must be a list of {Name, Value} strings."
    return None


# Amazon SES v2: POST /v2/email/outbound-emails, SigV4-signed JSON; 200 {"MessageId"}.

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;\-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


SES_TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")


class SesServer(EspServer):
    MAX_SKEW_SECONDS = 300

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    @staticmethod
    def error(
        status: int, kind: str, message: str, *, headers: dict[str, str] | None = None
    ) -> Answer:
        return Answer(
            status,
            {"message": message},
            {
                "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/",
                **(headers or {}),
            },
        )

    def accept(self, request: EspRequest) -> Answer:
        message_id = f"0100018c{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
        return Answer(200, {"MessageId": self._issue(message_id)})

    async def check(self, request: Request, received: EspRequest) -> None:
        if received.path != "/v2/email/outbound-emails" or request.method != "POST":
            raise _Refused(self.error(404, "UnknownOperationException", "Unknown operation"))
        self._verify_signature(request, received)
        body = _json_body(received, self.error(400, "BadRequestException", "Invalid JSON"))
        received.json = body
        destination = body.get("Destination") or {}
        if (
            not destination.get("ToAddresses")
            and not destination.get("CcAddresses")
            and not destination.get("BccAddresses")
        ):
            raise _Refused(self.error(400, "BadRequestException", "Missing final '@domain'"))
        for tag in body.get("EmailTags") or []:
            if not (
                isinstance(tag, dict)
                and all(
                    isinstance(tag.get(part), str) and SES_TAG_TEXT.fullmatch(tag[part])
                    for part in ("Name", "Value")
                )
            ):
                raise _Refused(
                    self.error(
                        400,
                        "BadRequestException",
                        "Tag name and value must contain only ASCII letters, numbers, "
                        "underscores or dashes, 256 characters at most.",
                    )
                )
        data = ((body.get("Content") or {}).get("Raw") or {}).get("Data")
        if not isinstance(data, str) or not _is_base64(data):
            raise _Refused(
                self.error(400, "BadRequestException", "Raw message data must be base64 encoded.")
            )
        raw = base64.b64decode(data)
        mime = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(mime, EmailMessage)
        if mime["From"] is None or mime["Date"] is None:
            raise _Refused(self.error(400, "MessageRejected", "Missing required header 'From'."))
        received.mime = mime

    def _verify_signature(self, request: Request, received: EspRequest) -> None:
        authorization = received.headers.get("authorization", "")
        match = _AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise _Refused(
                self.error(
                    403, "MissingAuthenticationTokenException", "Missing Authentication Token"
                )
            )
        if match["key"] != self.access_key:
            raise _Refused(
                self.error(
                    403,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            )
        if match["service"] != "ses" or match["region"] != self.region:
            raise _Refused(
                self.error(
                    403,
                    "InvalidSignatureException",
                    "Credential should be scoped to a valid region and service: "
                    f"{self.region}/ses.",
                )
            )
        signed = match["signed"].split(";")
        stamp = received.headers.get("x-amz-date", "")
        if (
            "host" not in signed
            or "x-amz-date" not in signed
            or not stamp.startswith(match["date"])
        ):
            raise _Refused(self.error(403, "InvalidSignatureException", _SIGNATURE_MISMATCH))
        moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - moment).total_seconds()) > self.MAX_SKEW_SECONDS:
            raise _Refused(self.error(403, "InvalidSignatureException", "Signature expired"))
        # The request again as the client signed it: the signed headers only, the same body.
        again = AWSRequest(
            method=request.method,
            url=f"http://{received.headers['host']}{request.url.path}"
            + (f"?{request.url.query}" if request.url.query else ""),
            data=received.body,
            headers={name: received.headers[name] for name in signed if name in received.headers},
        )
        again.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), "ses", self.region)
        expected = signer.signature(
            signer.string_to_sign(again, signer.canonical_request(again)), again
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise _Refused(self.error(403, "SignatureDoesNotMatch", _SIGNATURE_MISMATCH))


S = TypeVar("S", bound=EspServer)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """Serves the look-alike until the block ends; its base URL is `server.url`."""
    with serve_in_thread(server.app(), date_header=False) as url:
        server.url = url
        yield server
