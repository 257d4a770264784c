"""Amazon SNS messages posted to an HTTP(S) endpoint: the signature (versions 1 and 2) checked
against the signing certificate, which is fetched over https from an SNS host only and kept
in process; and subscriptions confirmed, at an SNS host only. A host that does not match
`sns_certificate_hosts` is never contacted, whatever a message names.

    not JSON, or fields missing                       400 / 403
    certificate URL not https or not an SNS host      403, nothing fetched
    signature wrong, stale Timestamp                  403
    certificate or confirmation unreachable           503 (SNS delivers the message again)
"""

import base64
import binascii
import json
import logging
import re
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postroom.errors import BadRequest, Forbidden, PostroomError
from postroom.settings import EventSettings

log = logging.getLogger(__name__)

MESSAGE_TYPE_HEADER = "x-amz-sns-message-type"
NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The string SNS signs: these fields' names and values, one per line, in this order; an
# optional field (a Notification's Subject) is left out when the message has none.
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = _SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
_OPTIONAL_FIELDS = {"Subject"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

# SNS signs a message once, when it is published, and retries an HTTP(S) delivery with the
# same Timestamp for as long as the subscription's delivery policy says: at most an hour in
# all (SNS caps an HTTP/S retry policy there). timestamp_tolerance_seconds (minutes, meant
# for a signature made per request) would refuse those retries; the hour is the window, the
# tolerance the clock skew allowed on top of it and into the future. A message replayed
# within the hour records nothing new: events are deduplicated by the SNS MessageId.
SNS_RETRY_WINDOW = timedelta(hours=1)

MAX_CERTIFICATE_BYTES = 64 * 1024  # a PEM certificate is 2-3 KB
MAX_CACHED_CERTIFICATES = 32  # SNS uses one per region, rotated every few years
FETCH_TIMEOUT = httpx.Timeout(10, connect=5)


class SnsUnavailable(PostroomError):
    """SNS could not be reached (its certificate, its confirmation): SNS retries on a 5xx."""

    status, slug, title = 503, "sns-unavailable", "Amazon SNS unavailable"


@dataclass(frozen=True)
class SnsMessage:
    """A message whose signature was verified."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: datetime
    subscribe_url: str | None


def read_message(body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
    """The message's fields (strings only: SNS sends no others that are signed)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
        raise BadRequest("the body is not an SNS message (JSON)") from exc
    if not isinstance(document, dict):
        raise BadRequest("the body is not an SNS message (a JSON object)")
    fields = {k: v for k, v in document.items() if isinstance(k, str) and isinstance(v, str)}
    kind = fields.get("Type")
    if kind not in _SIGNED_FIELDS:
        raise BadRequest(f"Type: not an SNS message type ({', '.join(_SIGNED_FIELDS)})")
    declared = headers.get(MESSAGE_TYPE_HEADER)
    if declared is not None and declared != kind:
        raise BadRequest(f"{MESSAGE_TYPE_HEADER} does not match the message's Type")
    return fields


def canonical_string(fields: Mapping[str, str]) -> bytes:
    names = _SIGNED_FIELDS[fields["Type"]]
    lines = []
    for name in names:
        value = fields.get(name)
        if value is None:
            if name in _OPTIONAL_FIELDS:
                continue
            raise Forbidden(f"{name}: missing from the signed SNS message")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def _host(url: str) -> str:
    """For a log line: the host alone (a SubscribeURL's query holds its token)."""
    try:
        return (urlsplit(url).hostname or "")[:255]
    except ValueError:
        return ""


def allowed_url(url: str, settings: EventSettings) -> bool:
    """https, on a host sns_certificate_hosts matches, with no credentials in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and host is not None
        and not parts.username
        and not parts.password
        and re.search(settings.sns_certificate_hosts, host) is not None
    )


@cache
def _tls(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _client(settings: EventSettings) -> httpx.AsyncClient:
    # No redirects (one could lead off the allowed hosts) and no proxy from the environment.
    return httpx.AsyncClient(
        verify=_tls(settings.sns_ca_file),
        timeout=FETCH_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )


class _CertificateCache:
    """Certificates by URL, the most recently used kept. Shared by the process's requests:
    a miss costs one fetch (two concurrent misses fetch twice, which is harmless)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, x509.Certificate] = OrderedDict()

    def get(self, url: str) -> x509.Certificate | None:
        found = self._entries.get(url)
        if found is not None:
            self._entries.move_to_end(url)
        return found

    def put(self, url: str, certificate: x509.Certificate) -> None:
        self._entries[url] = certificate
        self._entries.move_to_end(url)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


certificates = _CertificateCache(MAX_CACHED_CERTIFICATES)


async def _fetch_certificate(url: str, settings: EventSettings) -> x509.Certificate:
    body = bytearray()
    try:
        async with _client(settings) as http, http.stream("GET", url) as response:
            if response.status_code != 200:
                raise SnsUnavailable(f"the SNS signing certificate answered {response.status_code}")
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CERTIFICATE_BYTES:
                    raise Forbidden("the SNS signing certificate is too large")
    except httpx.HTTPError as exc:
        log.warning(
            "SNS signing certificate not fetched",
            extra={"host": _host(url), "error": type(exc).__name__},
        )
        raise SnsUnavailable("the SNS signing certificate could not be fetched") from exc
    try:
        return x509.load_pem_x509_certificate(bytes(body))
    except ValueError as exc:
        raise Forbidden("the SNS signing certificate is not a PEM certificate") from exc


async def signing_certificate(url: str, settings: EventSettings) -> x509.Certificate:
    if not allowed_url(url, settings):
        log.warning(
            "SNS message names a certificate off the SNS hosts; not fetched",
            extra={"host": _host(url)},
        )
        raise Forbidden("SigningCertURL: not an https URL of an SNS host")
    found = certificates.get(url)
    if found is None:
        found = await _fetch_certificate(url, settings)
        certificates.put(url, found)
    return found


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Forbidden("Timestamp: not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise Forbidden("Timestamp: no time zone")
    return parsed.astimezone(UTC)


def _check_fresh(timestamp: datetime, now: datetime, settings: EventSettings) -> None:
    skew = timedelta(seconds=settings.timestamp_tolerance_seconds)
    if timestamp < now - SNS_RETRY_WINDOW - skew or timestamp > now + skew:
        raise Forbidden("Timestamp: outside the accepted window (a replay, or a clock far off)")


async def verified_message(
    body: bytes, headers: Mapping[str, str], *, now: datetime, settings: EventSettings
) -> SnsMessage:
    fields = read_message(body, headers)
    signed = canonical_string(fields)
    version = fields.get("SignatureVersion", "")
    algorithm = _HASHES.get(version)
    if algorithm is None:
        raise Forbidden("SignatureVersion: not 1 or 2")
    try:
        signature = base64.b64decode(fields.get("Signature", ""), validate=True)
    except binascii.Error as exc:
        raise Forbidden("Signature: not base64") from exc
    if not signature:
        raise Forbidden("Signature: missing")
    timestamp = _timestamp(fields["Timestamp"])
    _check_fresh(timestamp, now, settings)
    certificate = await signing_certificate(fields.get("SigningCertURL", ""), settings)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Forbidden("the SNS signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Forbidden("the SNS signing certificate's key is not RSA")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise Forbidden("the SNS signature does not match the message") from exc
    return SnsMessage(
        type=fields["Type"],
        message_id=fields["MessageId"],
        topic_arn=fields["TopicArn"],
        message=fields["Message"],
        timestamp=timestamp,
        subscribe_url=fields.get("SubscribeURL"),
    )


async def confirm_subscription(message: SnsMessage, settings: EventSettings) -> None:
    """GETs the (verified) message's SubscribeURL, if it is an https URL of an SNS host."""
    url = message.subscribe_url or ""
    if not allowed_url(url, settings):
        # A genuine SNS message never names another host: refusing (rather than answering 200)
        # leaves the subscription unconfirmed and says so to whoever sent it.
        log.warning(
            "SNS subscription confirmation names a host off the SNS hosts; not fetched",
            extra={"topic_arn": message.topic_arn, "host": _host(url)},
        )
        raise Forbidden("SubscribeURL: not an https URL of an SNS host")
    try:
        async with _client(settings) as http, http.stream("GET", url) as response:
            status = response.status_code
    except httpx.HTTPError as exc:
        log.warning(
            "SNS subscription not confirmed",
            extra={"topic_arn": message.topic_arn, "error": type(exc).__name__},
        )
        raise SnsUnavailable("the SNS subscription could not be confirmed") from exc
    if status != 200:
        log.warning(
            "SNS subscription not confirmed",
            extra={"topic_arn": message.topic_arn, "status": status},
        )
        raise SnsUnavailable(f"the SNS subscription confirmation answered {status}")
    log.info("SNS subscription confirmed", extra={"topic_arn": message.topic_arn})
