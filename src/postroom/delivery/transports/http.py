"""What the HTTP email APIs share: one pooled httpx client per transport, a bounded read of each
answer, and one classification of it (2xx sent; 429 and 5xx try again, honouring Retry-After;
any other status refused for good; a connection lost after the request went out is unknown)."""

import asyncio
import base64
import time
from contextlib import suppress
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from postroom.delivery.mime import AttachmentFile
from postroom.delivery.transports.base import (
    OutcomeUnknownError,
    PermanentError,
    Receipt,
    TransientError,
)


@dataclass(frozen=True)
class HttpLimits:
    connect_timeout: float = 15
    timeout: float = 60
    """Each read and write (httpx's read, write and pool timeouts)."""
    message_timeout: float = 100
    """The whole request, from waiting for a connection to the end of the answer."""
    connections: int = 4
    max_response_bytes: int = 16_384


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: httpx.Headers
    body: str
    """Decoded as UTF-8, cut at `max_response_bytes` (a "…" marks the cut)."""


async def load_http_stack() -> None:
    """Loads now what httpx would load on its first request (anyio's asyncio backend and the
    parts it imports lazily, ~100 ms): otherwise a worker's first send through a rate-limited
    credential starts on its slot but arrives that much later, bunched with the next ones."""
    await anyio.lowlevel.checkpoint()
    for name in ("connect_tcp", "create_task_group", "fail_after", "Lock"):
        getattr(anyio, name)


def new_client(
    base_url: str, limits: HttpLimits, *, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """A client whose connections are pooled across the messages of one credential."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(limits.timeout, connect=limits.connect_timeout),
        limits=httpx.Limits(
            max_connections=limits.connections, max_keepalive_connections=limits.connections
        ),
        follow_redirects=False,
        trust_env=False,
    )


async def post(
    client: httpx.AsyncClient, url: str, limits: HttpLimits, **request: Any
) -> HttpAnswer:
    """POSTs and reads at most `max_response_bytes` of the answer; a network failure becomes
    a TransientError if the request cannot have arrived, an OutcomeUnknownError if it may have."""
    try:
        async with (
            asyncio.timeout(limits.message_timeout),
            client.stream("POST", url, **request) as response,
        ):
            body = bytearray()
            cut = False
            async for chunk in response.aiter_bytes():
                room = limits.max_response_bytes - len(body)
                body += chunk[:room]
                if len(chunk) > room:
                    cut = True
                    break
            text = body.decode("utf-8", "replace") + ("…" if cut else "")
            return HttpAnswer(response.status_code, response.headers, text)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        raise TransientError(f"cannot connect to {_origin(client, url)}: {_said(error)}") from None
    except (httpx.WriteError, httpx.WriteTimeout) as error:
        # The request did not get out whole, so the service cannot have acted on it.
        raise TransientError(f"connection lost while sending the request: {_said(error)}") from None
    except TimeoutError:
        raise OutcomeUnknownError(
            f"no answer within the message deadline ({limits.message_timeout:g} s); "
            "the message may have been accepted"
        ) from None
    except httpx.TimeoutException as error:
        raise OutcomeUnknownError(
            f"no answer in time after the request was sent ({type(error).__name__}); "
            "the message may have been accepted"
        ) from None
    except httpx.HTTPError as error:
        raise OutcomeUnknownError(
            f"connection lost after the request was sent: {_said(error)}; "
            "the message may have been accepted"
        ) from None


def _origin(client: httpx.AsyncClient, url: str) -> str:
    full = client.base_url.join(url)
    return f"{full.scheme}://{full.netloc.decode()}"


def _said(error: Exception) -> str:
    return str(error) or type(error).__name__


def classify(
    answer: HttpAnswer, *, text: str | None = None, retry_after: float | None = None
) -> Receipt:
    """The receipt of a 2xx; raises for anything else. `text` replaces the body as what is
    recorded (a provider whose body says little); `retry_after` is a wait the provider asked
    for in its own way, used when there is no Retry-After header."""
    recorded = answer.body if text is None else text
    if 200 <= answer.status < 300:
        return Receipt(answer.status, recorded)
    if answer.status == 429 or answer.status >= 500:
        wait = retry_after_seconds(answer.headers)
        raise TransientError(
            recorded, code=answer.status, retry_after=wait if wait is not None else retry_after
        )
    raise PermanentError(recorded, code=answer.status)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date, the latter measured against
    the answer's own Date so that a skewed local clock does not matter."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return seconds_until(moment, headers)


def seconds_until(moment: float, headers: httpx.Headers) -> float:
    """Seconds from the answer's Date (or else now) to `moment` (a Unix time), at least 0."""
    reference = time.time()
    if "date" in headers:
        with suppress(TypeError, ValueError, IndexError):
            reference = parsedate_to_datetime(headers["date"]).timestamp()
    return max(0.0, moment - reference)


async def read_attachments(
    attachments: tuple[AttachmentFile, ...],
) -> list[tuple[AttachmentFile, bytes]]:
    """Each attachment's bytes, read off the event loop."""
    read: list[tuple[AttachmentFile, bytes]] = []
    for attachment in attachments:
        try:
            read.append((attachment, await asyncio.to_thread(attachment.content.read_bytes)))
        except OSError as error:
            raise PermanentError(
                f"cannot read attachment {attachment.filename}: {error.strerror}"
            ) from None
    return read


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def one_line(value: str) -> str:
    """A header value on one line: the API refuses line breaks in a subject, and this keeps an
    older row from smuggling any into a provider's header either (as build_mime does)."""
    return " ".join(value.splitlines())


def display_address(address: str, name: str | None) -> str:
    """`Name <address>`, the name quoted when it must be, left in Unicode (the JSON and form
    APIs encode headers themselves)."""
    return str(Address(display_name=one_line(name), addr_spec=address)) if name else address
