"""Sends one webhook delivery: the stored body, signed per Standard Webhooks, with the
webhook's own headers and its credential's HTTP auth, and says what came of it.

What the answer means: 2xx succeeded; 410 Gone: the endpoint is gone for good (the dispatcher
disables the webhook); anything else is tried again on the schedule of retry.py. That includes
the other 4xx, as Standard Webhooks advises: a 401 or 404 is most often a receiver being
redeployed or misconfigured for a while, and the schedule is finite anyway. 429 and 503 are
asked for with Retry-After, which is honoured (retry.py caps it). Timeouts, refused
connections and a destination the policy refuses are failed attempts with the reason, tried
again too. Redirects are not followed: the endpoint is the URL the customer stored.

The destination policy judges every address the URL's host resolves to, when connecting (the
connection then goes to an address judged, so a name that resolves elsewhere a moment later
gains nothing); a refused host gets no request at all."""

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import anyio
import httpcore
import httpx
from standardwebhooks import Webhook

from postroom.core.destinations import DestinationPolicy, refused_text
from postroom.delivery.transports.http import retry_after_seconds

MAX_RESPONSE_BYTES = 64 * 1024
# Not stored with the tracking row: the secret material of an attempt.
UNSTORED_HEADERS = frozenset({"authorization", "webhook-signature"})
USER_AGENT = "postroom-webhooks"


class Verdict(StrEnum):
    SUCCEEDED = "succeeded"
    GONE = "gone"
    RETRY = "retry"


@dataclass(frozen=True)
class Credential:
    """Rebilly's webhook credential: HTTP auth added on top of the signature."""

    auth: Literal["basic", "digest"]
    username: str
    password: str = field(repr=False)

    def httpx_auth(self) -> httpx.Auth:
        if self.auth == "digest":
            return httpx.DigestAuth(self.username, self.password)
        return httpx.BasicAuth(self.username, self.password)


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    """Sent as webhook-id: the same on every attempt, so receivers can drop duplicates."""
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    secrets: Sequence[str] = field(repr=False)
    """The current secret first; the previous one too while a rotation overlaps."""
    credential: Credential | None = None


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    request_headers: dict[str, str]
    """What was sent, less Authorization and the signature."""
    status: int | None = None
    response: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int = 0


class RefusedDestinationError(Exception):
    pass


def signature(outgoing: Outgoing, timestamp: datetime) -> str:
    """The webhook-signature header: one `v1,<base64>` a secret, space-separated."""
    return " ".join(
        Webhook(secret).sign(outgoing.delivery_id, timestamp, outgoing.body)
        for secret in outgoing.secrets
    )


def request_headers(outgoing: Outgoing, timestamp: datetime) -> dict[str, str]:
    headers = {name.lower(): value for name, value in outgoing.headers.items()}
    headers.setdefault("user-agent", USER_AGENT)
    headers["content-type"] = "application/json"
    headers["webhook-id"] = outgoing.delivery_id
    headers["webhook-timestamp"] = str(int(timestamp.timestamp()))
    headers["webhook-signature"] = signature(outgoing, timestamp)
    return headers


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the destination policy allows."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._policy.allows_name(host):
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            with anyio.fail_after(timeout):
                found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        allowed = []
        for *_, address in found:
            ip = str(address[0])
            judged = ipaddress.ip_address(ip.split("%", 1)[0])  # an IPv6 scope id is no part
            if self._policy.allows_address(judged) and ip not in allowed:
                allowed.append(ip)
        if not allowed:
            raise RefusedDestinationError(refused_text(host))
        last: Exception | None = None
        for ip in allowed:
            try:
                return await self._inner.connect_tcp(
                    ip, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedDestinationError("unix sockets are not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookClient:
    """One pooled client for every webhook of a worker (connections kept per origin)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        connect_timeout: float,
        timeout: float,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        transport = httpx.AsyncHTTPTransport(retries=0)
        # httpx takes no network backend; its pool is rebuilt with one that judges addresses.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=None,
            max_keepalive_connections=100,
            network_backend=_GuardedBackend(policy),
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, outgoing: Outgoing, now: datetime) -> Answer:
        headers = request_headers(outgoing, now)
        stored = {k: v for k, v in headers.items() if k not in UNSTORED_HEADERS}
        auth = outgoing.credential.httpx_auth() if outgoing.credential else None
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            async with (
                asyncio.timeout(self.timeout),
                self._http.stream(
                    outgoing.method,
                    outgoing.url,
                    content=outgoing.body,
                    headers=headers,
                    auth=auth or httpx.USE_CLIENT_DEFAULT,
                ) as response,
            ):
                body = await self._read(response)
        except RefusedDestinationError as error:
            return Answer(Verdict.RETRY, stored, error=str(error), duration_ms=elapsed())
        except (TimeoutError, httpx.TimeoutException):
            return Answer(
                Verdict.RETRY, stored, error=f"timeout ({self.timeout:g} s)", duration_ms=elapsed()
            )
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            said = str(error) or type(error).__name__
            return Answer(
                Verdict.RETRY, stored, error=f"connection error: {said}", duration_ms=elapsed()
            )
        status = response.status_code
        if 200 <= status < 300:
            verdict = Verdict.SUCCEEDED
        elif status == 410:
            verdict = Verdict.GONE
        else:
            verdict = Verdict.RETRY
        return Answer(
            verdict,
            stored,
            status=status,
            response=body,
            response_headers=dict(response.headers.items()),
            retry_after=retry_after_seconds(response.headers),
            duration_ms=elapsed(),
        )

    async def _read(self, response: httpx.Response) -> str:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            room = self.max_response_bytes - len(body)
            body += chunk[:room]
            if len(chunk) >= room:
                break
        return body.decode("utf-8", "replace")
