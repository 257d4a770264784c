"""A webhook receiver on 127.0.0.1: records every request it gets and plays scripted answers
per path (200 by default; 500, 410, 429 with Retry-After, a hang until the test ends), and can
ask for HTTP basic or digest auth (RFC 7616, MD5, qop=auth) as a customer's endpoint would."""

import asyncio
import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.servers.http import serve_in_thread

REALM = "webhooks"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False
    """Never answers (until the receiver stops)."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    authorized: bool | None
    """Whether the auth the path asks for was satisfied (None: it asks for none)."""
    answered: int | None


@dataclass(frozen=True)
class AuthDemand:
    kind: str
    username: str
    password: str


class WebhookReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._auth: dict[str, AuthDemand] = {}
        self._nonces: set[str] = set()
        self.released = threading.Event()
        self.url = ""

    def script(self, path: str, *replies: Reply) -> None:
        """The next answers on `path`, in order; after them, 200."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(replies)

    def require_auth(self, path: str, kind: str, username: str, password: str) -> None:
        self._auth[path] = AuthDemand(kind, username, password)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        body = await request.body()
        path = request.url.path
        authorized: bool | None = None
        demand = self._auth.get(path)
        reply: Reply | None = None
        if demand is not None:
            authorized = self._authorized(demand, request)
            if not authorized:
                reply = self._challenge(demand)
        if reply is None:
            with self._lock:
                queue = self._scripts.get(path)
                reply = queue.pop(0) if queue else Reply()
        record = Received(
            request.method,
            path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            authorized,
            None if reply.hang else reply.status,
        )
        with self._lock:
            self._received.append(record)
        if reply.hang:
            # Released from another thread (the test's): waited for off the server's loop.
            await asyncio.to_thread(self.released.wait)
            return
        await Response(reply.body, reply.status, headers=reply.headers)(scope, receive, send)

    def _challenge(self, demand: AuthDemand) -> Reply:
        if demand.kind == "basic":
            return Reply(401, {"www-authenticate": f'Basic realm="{REALM}"'})
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        return Reply(
            401,
            {
                "www-authenticate": (
                    f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
                )
            },
        )

    def _authorized(self, demand: AuthDemand, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if demand.kind == "basic":
            expected = base64.b64encode(f"{demand.username}:{demand.password}".encode()).decode()
            return given == f"Basic {expected}"
        if not given.startswith("Digest "):
            return False
        parts = _digest_parts(given[len("Digest ") :])
        if parts.get("username") != demand.username or parts.get("nonce") not in self._nonces:
            return False
        uri = parts.get("uri", "")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - RFC 7616's MD5

        ha1 = md5(f"{demand.username}:{REALM}:{demand.password}")
        ha2 = md5(f"{request.method}:{uri}")
        expected = md5(
            f"{ha1}:{parts['nonce']}:{parts.get('nc', '')}:{parts.get('cnonce', '')}:auth:{ha2}"
        )
        return parts.get("response") == expected


def _digest_parts(header: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts[name.strip()] = value.strip().strip('"')
    return parts


@contextmanager
def webhook_receiver(port: int = 0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        with serve_in_thread(receiver, port=port) as url:
            receiver.url = url
            try:
                yield receiver
            finally:
                receiver.released.set()
    finally:
        receiver.released.set()
