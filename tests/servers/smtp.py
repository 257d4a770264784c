"""A real SMTP server on 127.0.0.1 that records what it got and plays scripted replies."""

import asyncio
import email
import email.policy
import functools
import hmac
import re
import secrets
import socket
import ssl
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.raw import serving_tcp

HOST = "127.0.0.1"
_REPLY = re.compile(r"[2-5][0-9][0-9]( .*)?")
# Senders in a crash test open many connections at once; asyncio's default backlog of 100
# would make the kernel drop SYNs and the clients stall for a second on the retry.
_BACKLOG = 1024


@dataclass
class Received:
    mail_from: str
    mail_options: list[str]
    """MAIL FROM's parameters as sent, e.g. ["SMTPUTF8"]."""
    rcpt_tos: list[str]
    data: bytes
    """The message as received: CRLF line endings, dot-stuffing undone."""
    message: EmailMessage
    """`data` parsed with email.policy.default, after CRLF became LF."""
    authenticated_as: str | None
    reply: str
    """What the server answered to this DATA, e.g. "250 2.0.0 OK queued as 1A2B3C4D5E6F"."""


@functools.cache
def _ca() -> trustme.CA:
    return trustme.CA()


@functools.cache
def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _ca().issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def trust_ca() -> ssl.SSLContext:
    """A client context that verifies the test servers' certificates (127.0.0.1, localhost)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    _ca().configure_trust(context)
    return context


class SmtpServer:
    """What a running `smtp_server()` received, and the replies it is scripted to give.

    Written from the server's thread, read from the test's; every access takes the lock.
    """

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._data_replies: deque[str] = deque()
        self._rcpt_replies: deque[str] = deque()
        self._connections = 0
        self._data_commands = 0
        self._drop_connections: Callable[[], None] | None = None
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def received(self) -> list[Received]:
        """The accepted messages in arrival order (a snapshot)."""
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def data_commands(self) -> int:
        """DATA commands answered, accepted or not."""
        with self._lock:
            return self._data_commands

    def script(self, *replies: str) -> None:
        """Queue replies for the next DATA commands, one each; then "250 2.0.0 OK queued as <id>".

        A 4xx/5xx reply leaves the message out of `received`; a 421 also closes the connection.
        """
        with self._lock:
            self._data_replies.extend(_checked(replies))

    def script_rcpt(self, *replies: str) -> None:
        """Queue replies for the next RCPT TO commands, one each; then "250 OK"."""
        with self._lock:
            self._rcpt_replies.extend(_checked(replies))

    def drop_connections(self) -> None:
        """Closes every connection open now from the server's side, as a restart does."""
        assert self._drop_connections is not None
        self._drop_connections()

    def clear(self) -> None:
        """Forget what was received and scripted, and zero the counters."""
        with self._lock:
            self._received.clear()
            self._data_replies.clear()
            self._rcpt_replies.clear()
            self._connections = 0
            self._data_commands = 0

    async def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """Wait until at least `count` messages were received; returns them all.

        The timeout is built in so that no test can forget to bound its wait.
        """
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
            raise TimeoutError(f"{got} of {count} messages arrived within {timeout}s") from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.received

    # The server thread's side.

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _next_rcpt_reply(self) -> str | None:
        with self._lock:
            return self._rcpt_replies.popleft() if self._rcpt_replies else None

    def _next_data_reply(self) -> str | None:
        with self._lock:
            return self._data_replies.popleft() if self._data_replies else None

    def _answered_data(self, received: Received | None) -> None:
        with self._lock:
            self._data_commands += 1
            if received is None:
                return
            self._received.append(received)
            arrived = len(self._received)
            ready = [w for w in self._waiters if w[0] <= arrived]
            for waiter in ready:
                self._waiters.remove(waiter)
        for _, loop, future in ready:
            # The test's loop may already be gone if it gave up; nobody is waiting then.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)


def _checked(replies: tuple[str, ...]) -> list[str]:
    for reply in replies:
        if not _REPLY.fullmatch(reply):
            raise ValueError(f"not a one-line SMTP reply: {reply!r}")
    return list(replies)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _close_after_reply(server: SMTP, reply: str) -> None:
    # RFC 5321 3.8: a server that says 421 closes the channel. The close is queued behind
    # the reply, which aiosmtpd writes before it next yields.
    if reply.startswith("421") and server.transport is not None:
        server.loop.call_soon(server.transport.close)


class _Handler:
    def __init__(
        self,
        state: SmtpServer,
        auth: tuple[str, str] | None,
        hold_data_seconds: float,
        pipelining: bool,
    ) -> None:
        self._state = state
        self._auth = auth
        self._hold = hold_data_seconds
        self._pipelining = pipelining

    async def handle_EHLO(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads one command at a time from its stream, so commands sent together are
        # answered in order; it only does not say so. Given this hook, it leaves the name to it.
        session.host_name = hostname
        if self._pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._state._next_rcpt_reply() or "250 OK"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        _close_after_reply(server, reply)
        return reply

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self._hold:
            await asyncio.sleep(self._hold)
        reply = self._state._next_data_reply()
        if reply is None:
            reply = f"250 2.0.0 OK queued as {secrets.token_hex(6).upper()}"
        received = None
        if reply.startswith("2"):
            data = envelope.original_content or b""
            # Python's email package works in "\n" lines; parsed as received, bodies would
            # keep their "\r" (get_content() == "Hi\r\n").
            message = email.message_from_bytes(
                data.replace(b"\r\n", b"\n"), policy=email.policy.default
            )
            authenticated_as = session.auth_data if session.authenticated else None
            received = Received(
                mail_from=envelope.mail_from or "",
                mail_options=list(envelope.mail_options),
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                message=message,
                authenticated_as=authenticated_as if isinstance(authenticated_as, str) else None,
                reply=reply,
            )
        self._state._answered_data(received)
        _close_after_reply(server, reply)
        return reply

    async def auth_CRAM__MD5(  # noqa: N802 (aiosmtpd maps auth_CRAM__MD5 to "CRAM-MD5")
        self, server: SMTP, args: list[str]
    ) -> AuthResult:
        if len(args) != 1:
            await server.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.token_hex(8)}@localhost>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):  # aborted; aiosmtpd has answered already
            return AuthResult(success=False, handled=True)
        login, _, digest = response.partition(b" ")
        if self._auth is not None:
            username, password = self._auth
            expected = hmac.new(password.encode(), challenge, "md5").hexdigest().encode()
            if login == username.encode() and hmac.compare_digest(digest, expected):
                return AuthResult(success=True, auth_data=username)
        return AuthResult(success=False, handled=False)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """PLAIN and LOGIN; `auth_data` becomes the login name recorded on each message."""
        if self._auth is not None and isinstance(data, LoginPassword):
            username, password = self._auth
            if data == (username.encode(), password.encode()):
                return AuthResult(success=True, auth_data=username)
        return AuthResult(success=False, handled=False)


class _Smtp(SMTP):
    def __init__(self, handler: _Handler, *, require_auth: bool, **kwargs: Any) -> None:
        # aiosmtpd warns (a UserWarning, raised in the server thread as an error under this
        # suite's filterwarnings) whenever auth_required is passed without auth_require_tls.
        # Over loopback, plain-text AUTH is what the tests want, so the same flag is set
        # after construction; aiosmtpd then refuses MAIL, RCPT and DATA with 530 by itself.
        super().__init__(handler, auth_required=False, **kwargs)
        self._auth_required = require_auth


class _Controller(Controller):
    def __init__(
        self,
        state: SmtpServer,
        handler: _Handler,
        sock: socket.socket,
        *,
        require_auth: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, hostname=HOST, port=state.port, **kwargs)
        self._state = state
        self._sock = sock
        self._require_auth = require_auth
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()
        state._drop_connections = self._drop_connections

    def factory(self) -> SMTP:
        # Runs once per TCP connection. The loop is passed in because without it aiosmtpd
        # looks the loop up under warnings.catch_warnings(), which rewrites the process-wide
        # warning filters from this thread while the test's thread may be using them.
        self._state._connected()
        protocol = _Smtp(
            self.handler, require_auth=self._require_auth, loop=self.loop, **self.SMTP_kwargs
        )
        self._protocols.add(protocol)
        return protocol

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        # Listening on a socket bound before the thread starts gives a free port with no race.
        return self.loop.create_server(
            self._factory_invoker, sock=self._sock, ssl=self.ssl_context, backlog=_BACKLOG
        )

    def _drop_connections(self) -> None:
        async def close_all() -> None:
            for protocol in list(self._protocols):
                if protocol.transport is not None:
                    protocol.transport.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=10)

    async def drain(self) -> None:
        """Stop listening, drop any connection still open, and wait for its handler to end."""
        assert self.server is not None
        self.server.close()
        # Aborting closes the socket at once (no TLS close_notify wait) and makes aiosmtpd
        # cancel the connection's handler; once the handlers are done no socket is left for
        # the garbage collector to warn about.
        for protocol in list(self._protocols):
            if isinstance(protocol.transport, asyncio.Transport):
                protocol.transport.abort()
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=5)
            for task in stuck:
                task.cancel()
        await self.server.wait_closed()


@contextmanager
def smtp_server(
    *,
    auth: tuple[str, str] | None = None,
    starttls: bool = False,
    implicit_tls: bool = False,
    hold_data_seconds: float = 0,
    pipelining: bool = True,
) -> Iterator[SmtpServer]:
    """Serve SMTP on 127.0.0.1 until the block ends.

    `auth` (username, password) makes AUTH (PLAIN, LOGIN, CRAM-MD5) required before MAIL;
    it is offered before TLS unless `starttls`, which offers STARTTLS and requires it.
    `implicit_tls` wraps the socket itself (SMTPS). Certificates come from the CA that
    `trust_ca()` trusts. `hold_data_seconds` delays every DATA reply. `pipelining`: EHLO
    offers PIPELINING (RFC 2920), as nearly every server does.
    """
    if starttls and implicit_tls:
        raise ValueError("choose starttls or implicit_tls, not both")
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and aiosmtpd writes a multi-line reply (EHLO) line by line, so with Nagle on every
    # connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))
    state = SmtpServer(sock.getsockname()[1])
    handler = _Handler(state, auth, hold_data_seconds, pipelining)
    controller = _Controller(
        state,
        handler,
        sock,
        require_auth=auth is not None,
        # Given a name, aiosmtpd skips socket.getfqdn(), a DNS lookup per connection.
        server_hostname="localhost",
        ssl_context=_server_context() if implicit_tls else None,
        tls_context=_server_context() if starttls else None,
        require_starttls=starttls,
        # AUTH before STARTTLS is refused only when STARTTLS is on offer; with implicit TLS
        # aiosmtpd does not know the socket is encrypted, so it must not require it either.
        auth_require_tls=starttls,
        authenticator=handler.authenticate,
        enable_SMTPUTF8=True,
    )
    try:
        controller.start()
    except BaseException:
        controller.stop(no_assert=True)
        sock.close()
        raise
    # start() opens one connection of its own to check that the server answers.
    state.clear()
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(controller.drain(), controller.loop).result(timeout=10)
        controller.stop()


def write_ca_pem(path: Path) -> Path:
    """The test CA's certificate as a PEM file, for clients configured by a CA file path."""
    _ca().cert_pem.write_to_path(str(path))
    return path


class Tarpit:
    """What a running `tarpit_server()` saw: connections it greeted and then left hanging."""

    def __init__(self, listener: socket.socket) -> None:
        self.host = HOST
        self.port: int = listener.getsockname()[1]
        self._listener = listener
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._sockets)

    def close(self) -> None:
        """Stops accepting and drops every connection (the clients' sends fail at once)."""
        self._closed.set()
        with self._lock:
            held, self._sockets = self._sockets, []
            self._listener.close()
        for connection in held:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with suppress(OSError):
                connection.sendall(b"220 tarpit ESMTP\r\n")
            with self._lock:
                if self._closed.is_set():
                    connection.close()
                    return
                self._sockets.append(connection)


@contextmanager
def tarpit_server() -> Iterator[Tarpit]:
    """A server on 127.0.0.1 that greets with "220" and then never answers anything, until
    `close()` or the end of the block."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind((HOST, 0))
    listener.listen(_BACKLOG)
    listener.settimeout(0.1)
    tarpit = Tarpit(listener)
    thread = threading.Thread(target=tarpit._serve, name="tarpit", daemon=True)
    thread.start()
    try:
        yield tarpit
    finally:
        tarpit.close()
        thread.join(timeout=10)


# A server that speaks SMTP with replies no well-behaved server sends.

MIB_LINE = b"x" * (1 << 20)
"""A reply line of 1 MiB (aiosmtplib reads at most 8 KiB of one)."""


@dataclass
class HostileSmtp:
    """What a running `hostile_server()` saw."""

    port: int
    host: str = HOST
    connections: int = 0
    messages: list[bytes] = field(default_factory=list)
    """The content of each DATA whose end it answered (whatever it answered), dot-stuffed."""


_ANSWERS = {
    b"EHLO": b"250 hostile.example.com\r\n",
    b"HELO": b"250 hostile.example.com\r\n",
    b"MAIL": b"250 2.1.0 OK\r\n",
    b"RCPT": b"250 2.1.5 OK\r\n",
    b"RSET": b"250 2.0.0 OK\r\n",
    b"NOOP": b"250 2.0.0 OK\r\n",
}


@asynccontextmanager
async def hostile_server(
    *,
    greeting: bytes = b"220 hostile.example.com ESMTP\r\n",
    data_reply: bytes = b"250 2.0.0 OK queued\r\n",
    mail_reply: bytes = _ANSWERS[b"MAIL"],
    pipelining: bool = False,
) -> AsyncIterator[HostileSmtp]:
    """A minimal SMTP server (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no AUTH, no TLS) in the
    running loop until the block ends, that greets with `greeting` and answers the end of each
    message with `data_reply` (and MAIL with `mail_reply`): raw bytes, NUL, invalid UTF-8 or a
    1 MiB line as the test likes.

    `pipelining`: EHLO offers PIPELINING, and the replies to MAIL and RCPT are held until DATA
    comes, then written with DATA's: a client that waits for each reply before it sends the
    next command waits for ever."""
    state = HostileSmtp(port=0)
    hello = b"250-hostile.example.com\r\n250 PIPELINING\r\n" if pipelining else None

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.write(greeting)
        await writer.drain()
        held = b""
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            if verb != b"DATA":
                answer = _ANSWERS.get(verb, b"502 5.5.2 Not implemented\r\n")
                if verb == b"MAIL":
                    answer = mail_reply
                if verb == b"EHLO" and hello is not None:
                    answer = hello
                if pipelining and verb in (b"MAIL", b"RCPT"):
                    held += answer
                    continue
                writer.write(answer)
                await writer.drain()
                continue
            writer.write(held + b"354 End data with <CR><LF>.<CR><LF>\r\n")
            held = b""
            await writer.drain()
            content = bytearray()
            while (line := await reader.readline()) not in (b".\r\n", b""):
                content += line
            if not line:
                return
            state.messages.append(bytes(content))
            writer.write(data_reply)
            await writer.drain()

    async with serving_tcp(converse) as port:
        state.port = port
        yield state
