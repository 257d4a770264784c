"""SMTP with aiosmtplib: pooled connections per mail server, reused across messages, with a
bounded number at once, a timeout on every step, and each failure classified."""

import asyncio
import ipaddress
import re
import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from postroom.core.destinations import DestinationPolicy, refused_text
from postroom.delivery.mime import MimeStream, OutgoingMessage
from postroom.delivery.transports.base import (
    OutcomeUnknownError,
    PermanentError,
    Receipt,
    TransientError,
)
from postroom.delivery.transports.correlation import smtp_queue_id
from postroom.delivery.transports.smtp_pipelining import PipeliningClient, PipeliningProtocol

Encryption = Literal["none", "tls", "ssl"]
AuthMethod = Literal["none", "plain", "login", "cram-md5"]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    encryption: Encryption = "none"
    auth: AuthMethod = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> "SmtpConfig":
        """smtp://user:pass@host:port?encryption=none|tls|ssl&auth=plain|login|cram-md5"""
        expected = "expected smtp://[user:pass@]host[:port][?encryption=tls]"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:  # its text may quote part of the URL, the password's included
            raise ValueError(expected) from None
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError(expected)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        encryption = query.get("encryption", "ssl" if parts.scheme == "smtps" else "none")
        if encryption not in {"none", "tls", "ssl"}:
            raise ValueError("encryption must be none, tls or ssl")
        username = unquote(parts.username) if parts.username else None
        auth = query.get("auth", "plain" if username else "none")
        if auth not in {"none", "plain", "login", "cram-md5"}:
            raise ValueError("auth must be none, plain, login or cram-md5")
        return cls(
            host=parts.hostname,
            port=port or (465 if encryption == "ssl" else 25),
            encryption=encryption,  # type: ignore[arg-type]
            auth=auth,  # type: ignore[arg-type]
            username=username,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True)
class SmtpLimits:
    """Each step's own deadline (seconds), the whole message's, and where it may connect."""

    connections: int = 4
    connect_timeout: float = 15
    greeting_timeout: float = 30
    handshake_timeout: float = 30
    timeout: float = 60
    """Each command (MAIL, RCPT, DATA, RSET) and each chunk of the message written."""
    data_end_timeout: float = 60
    message_timeout: float = 100
    tls_context: ssl.SSLContext | None = None
    destinations: DestinationPolicy | None = None
    """None: any address (the operator's own server, POSTROOM_SMTP_URL)."""


_WAIT = re.compile(r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def retry_after_hint(text: str) -> float | None:
    """A wait a server asked for in its reply text ("try again in 5 minutes"), in seconds."""
    match = _WAIT.search(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]


def _not_smtp(where: str) -> TransientError:
    # Transient: a mail server restarting, or a balancer with no backend, answers so for a
    # while; max_attempts bounds the retries. What the peer sent is never repeated: the stored
    # text must not show what else listens there.
    return TransientError(f"not an SMTP server at {where}")


def _refusal(code: int, text: str) -> TransientError | PermanentError:
    if 400 <= code < 500:
        return TransientError(text, code=code, retry_after=retry_after_hint(text))
    return PermanentError(text, code=code)


class SmtpTransport:
    name = "smtp"

    def __init__(self, config: SmtpConfig, limits: SmtpLimits) -> None:
        self.config = config
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.connections)
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: OutgoingMessage) -> Receipt:
        async with self._slots:
            progress = _Progress()
            deadline = self.limits.message_timeout
            try:
                async with asyncio.timeout(deadline):
                    return await self._send_on_connection(message, progress)
            except TimeoutError:
                if progress.data_sent:
                    raise OutcomeUnknownError(
                        f"no reply to the end of the message within the message deadline "
                        f"({deadline:g} s); it may have been accepted"
                    ) from None
                raise TransientError(
                    f"the message deadline ({deadline:g} s) passed before the message was sent"
                ) from None

    async def _send_on_connection(self, message: OutgoingMessage, progress: "_Progress") -> Receipt:
        reused = bool(self._idle)
        client = self._idle.pop() if reused else await self._connect()
        try:
            receipt = await self._transaction(client, message, progress)
        except _StaleConnection:
            client.close()
            if not reused:
                raise TransientError("the server closed the connection before MAIL") from None
            # A pooled connection the server had closed while idle: nothing was sent on
            # it, so one more try on a new connection is safe.
            client = await self._connect()
            try:
                receipt = await self._transaction(client, message, progress)
            except BaseException:
                client.close()
                raise
        except BaseException:
            client.close()
            raise
        self._idle.append(client)
        return receipt

    async def _connect(self) -> aiosmtplib.SMTP:
        config, limits = self.config, self.limits
        host = config.host[1:-1] if config.host.startswith("[") else config.host
        where = f"{config.host}:{config.port}"
        sock = await self._open_socket(host, where)
        # Connected to the checked address; TLS still verifies the certificate against the
        # host name (aiosmtplib's `hostname` is the server_hostname of both TLS modes).
        client = PipeliningClient(
            hostname=host,
            sock=sock,
            use_tls=config.encryption == "ssl",
            start_tls=False,
            tls_context=limits.tls_context,
            timeout=limits.timeout,
        )
        try:
            try:
                await client.connect(timeout=limits.greeting_timeout)
            except (aiosmtplib.SMTPException, OSError) as error:
                cause = error if isinstance(error, ssl.SSLError) else error.__cause__
                if isinstance(cause, ssl.SSLError):
                    raise TransientError(f"TLS with {where} failed: {cause}") from None
                raise _not_smtp(where) from None
            await self._handshake(client)
        except aiosmtplib.SMTPAuthenticationError as error:
            client.close()
            raise PermanentError(
                f"authentication failed: {error.code} {error.message}", code=error.code
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            client.close()
            if not _is_smtp_reply(error.code):
                raise _not_smtp(where) from None
            raise _refusal(error.code, error.message) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            client.close()
            raise TransientError(f"the SMTP session with {where} broke off: {error}") from None
        except BaseException:
            client.close()
            sock.close()
            raise
        return client

    async def _open_socket(self, host: str, where: str) -> socket.socket:
        """A socket connected to an address of `host` the destination policy allows (the
        addresses actually connected to are the ones judged, whatever the name resolved to
        when the credential was stored). A refusal is permanent: nothing is connected to."""
        policy = self.limits.destinations
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                found = await loop.getaddrinfo(
                    host, self.config.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
                if policy is not None and not policy.allows_name(host):
                    found = [
                        entry
                        for entry in found
                        if policy.allows_address(ipaddress.ip_address(entry[4][0]))
                    ]
                    if not found:
                        raise PermanentError(refused_text(self.config.host))
                for family, type_, proto, _, address in found:
                    sock = socket.socket(family, type_, proto)
                    sock.setblocking(False)
                    try:
                        await loop.sock_connect(sock, address)
                    except OSError:
                        sock.close()
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return sock
        except (OSError, TimeoutError):
            pass
        # Refused, unreachable, silent or unknown name alike: the stored text tells no more.
        raise TransientError(f"cannot connect to {where}")

    async def _handshake(self, client: aiosmtplib.SMTP) -> None:
        """EHLO, STARTTLS (then EHLO again: TLS resets the session) and AUTH, each step with
        its own deadline, so a server that greets and then stalls is given up on early."""
        config, timeout = self.config, self.limits.handshake_timeout
        step = "EHLO"
        try:
            await _hello(client, timeout)
            if config.encryption == "tls":
                step = "STARTTLS"
                await client.starttls(timeout=timeout)
                step = "EHLO"
                await _hello(client, timeout)
            if config.auth == "none":
                return
            step = "AUTH"
            username, password = config.username or "", config.password or ""
            async with asyncio.timeout(timeout):
                if config.auth == "plain":
                    await client.auth_plain(username, password)
                elif config.auth == "login":
                    await client.auth_login(username, password)
                else:
                    await client.auth_crammd5(username, password)
        except TimeoutError:
            raise TransientError(
                f"no answer to {step} from {config.host}:{config.port} within {timeout:g} s"
            ) from None

    async def _transaction(
        self,
        client: aiosmtplib.SMTP,
        message: OutgoingMessage,
        progress: "_Progress",
    ) -> Receipt:
        encoding = "utf-8" if message.needs_smtputf8 else "ascii"
        sender = _envelope_address(message.return_path or message.sender, encoding)
        recipients = [_envelope_address(r, encoding) for r in message.recipients]
        with _message_data(message, client) as data:
            options = [b"SMTPUTF8"] if message.needs_smtputf8 else []
            if data.eight_bit:
                options.append(b"BODY=8BITMIME")
            commands = [
                (b"MAIL", b"FROM:" + sender, *options),
                *((b"RCPT", b"TO:" + address) for address in recipients),
                (b"DATA",),
            ]
            return await self._exchange(client, message, commands, data, progress)

    async def _exchange(
        self,
        client: aiosmtplib.SMTP,
        message: OutgoingMessage,
        commands: list[tuple[bytes, ...]],
        data: MimeStream,
        progress: "_Progress",
    ) -> Receipt:
        try:
            refused = await self._envelope(client, message, commands)
            last = await _send_content(client, data, self.limits.timeout)
            # Only the final "." lets the server accept the message: until the write that ends
            # with it, a failure leaves nothing delivered.
            progress.data_sent = True
            reply = await _end_content(client, last, self.limits.data_end_timeout)
        except aiosmtplib.SMTPResponseException as error:
            if _is_smtp_reply(error.code):
                raise _refusal(error.code, error.message) from None
            if progress.data_sent:
                raise OutcomeUnknownError(
                    "a reply to the end of the message that is not SMTP; it may have been accepted"
                ) from None
            raise _not_smtp(f"{self.config.host}:{self.config.port}") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            if progress.data_sent:
                raise OutcomeUnknownError(
                    f"connection lost waiting for the reply to DATA: {error}"
                ) from None
            raise TransientError(f"connection lost before DATA: {error}") from None
        text = reply.message
        if refused:
            text += " (refused recipients: " + "; ".join(refused) + ")"
        return Receipt(reply.code, text, smtp_queue_id(reply.message))

    async def _envelope(
        self, client: aiosmtplib.SMTP, message: OutgoingMessage, commands: list[tuple[bytes, ...]]
    ) -> list[str]:
        """MAIL, one RCPT a recipient and DATA (`commands`), up to the server's 354: the
        recipients it refused for good (the message goes to the others), or the refusal that
        ends the transaction. Where the server offers PIPELINING they go in one write; the
        replies are judged in the same order."""
        replies = _Replies(client, commands, self.limits.timeout)
        mail = await replies.next()
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, message.sender)
        refused: list[str] = []
        for recipient in message.recipients:
            reply = await replies.next()
            if reply.code in (250, 251):
                continue
            if reply.code < 500:
                # A partial send now and the rest later would deliver twice to some.
                await replies.abandon()
                raise _refusal(reply.code, f"{recipient}: {reply.message}")
            refused.append(f"{recipient}: {reply.code} {reply.message}")
        if len(refused) == len(message.recipients):
            await replies.abandon()
            raise PermanentError("; ".join(refused), code=550)
        start = await replies.next()
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        return refused

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


# What would end an address on a command line or start another command: whitespace (CR and LF
# included) and angle brackets. The API stores only addresses email-validator accepts, which have
# none of these; this refuses any row that does, before a command is sent.
_NOT_ON_A_COMMAND_LINE = re.compile(r"[\s<>]")


def _message_data(message: OutgoingMessage, client: aiosmtplib.SMTP) -> MimeStream:
    """The message as this connection's server takes it: text parts as 8bit where it announced
    8BITMIME (RFC 6152), which nearly every server does, instead of quoted-printable (whose
    encoding was the largest single cost of building a message)."""
    try:
        return MimeStream(message, eight_bit=client.supports_extension("8bitmime"))
    except OSError as error:
        raise PermanentError(f"cannot read an attachment: {error}") from None


def _envelope_address(address: str, encoding: str) -> bytes:
    """`<address>` for MAIL FROM or RCPT TO. aiosmtplib's mail() and rcpt() parse each address
    again with email.utils.parseaddr (for a display name a stored address never has), which
    cost ~8% of a worker's CPU."""
    if not address or _NOT_ON_A_COMMAND_LINE.search(address):
        raise PermanentError(f"{address!r} cannot be sent as an SMTP envelope address")
    return b"<" + address.encode(encoding) + b">"


class _StaleConnection(Exception):
    """A connection found closed before the server answered anything of a message."""


class _Replies:
    """The replies to a message's MAIL, RCPT and DATA commands, taken in order. Where the server
    offers PIPELINING the commands all go in one write when the first reply is asked for;
    otherwise each goes when its reply is."""

    def __init__(
        self,
        client: aiosmtplib.SMTP,
        commands: list[tuple[bytes, ...]],
        timeout: float,
    ) -> None:
        self._client = client
        self._commands = commands
        self._timeout = timeout
        self._together = isinstance(
            client.protocol, PipeliningProtocol
        ) and client.supports_extension("pipelining")
        self._read: list[aiosmtplib.SMTPResponse] = []
        self._taken = 0

    async def next(self) -> aiosmtplib.SMTPResponse:
        try:
            if not self._together:
                command = self._commands[self._taken]
                self._read.append(
                    await self._client.execute_command(*command, timeout=self._timeout)
                )
            elif self._taken == 0:
                protocol = self._client.protocol
                if not isinstance(protocol, PipeliningProtocol):
                    raise aiosmtplib.SMTPServerDisconnected("Server not connected")
                self._read = await protocol.execute_pipelined(self._commands, self._timeout)
            if self._taken >= len(self._read):
                raise aiosmtplib.SMTPServerDisconnected("the server closed the connection")
        except aiosmtplib.SMTPServerDisconnected:
            if self._taken == 0:
                raise _StaleConnection from None
            raise
        reply = self._read[self._taken]
        self._taken += 1
        return reply

    async def abandon(self) -> None:
        """Ends the transaction before any content: RSET, if the server took MAIL and has not
        answered DATA with 354 (anything sent after that is content; the connection is closed
        instead, and a server drops a message whose end never came)."""
        read = self._read
        data_started = len(read) == len(self._commands) and read[-1].code == 354
        if data_started or not read or read[0].code != 250:
            return
        # Whatever the RSET meets, the refusal being handled is what the message's record says.
        with suppress(aiosmtplib.SMTPException, OSError):
            await self._client.rset()


@dataclass
class _Progress:
    """How far one message's send got: after the end of the data, a cut-off is unknown."""

    data_sent: bool = False


def _is_smtp_reply(code: int) -> bool:
    """A refusal's code as an SMTP server sends it; aiosmtplib gives -1 for bytes that are not
    an SMTP reply (and quotes them in the text)."""
    return 400 <= code < 600


async def _hello(client: aiosmtplib.SMTP, timeout: float) -> None:  # noqa: ASYNC109
    try:
        await client.ehlo(timeout=timeout)
    except aiosmtplib.SMTPHeloError as error:
        if not 500 <= error.code < 600:
            raise
        await client.helo(timeout=timeout)  # a server without ESMTP


class DotStuffer:
    """RFC 5321 4.5.2 transparency for DATA sent in chunks: a "." that begins a line is
    doubled, wherever the chunks happen to split the lines."""

    def __init__(self) -> None:
        self._at_line_start = True

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        stuffed = chunk.replace(b"\n.", b"\n..")
        if self._at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        self._at_line_start = stuffed.endswith(b"\n")
        return stuffed

    def end(self) -> bytes:
        """The end-of-data mark, after a line break if the content did not end with one."""
        return b".\r\n" if self._at_line_start else b"\r\n.\r\n"


async def _send_content(
    client: aiosmtplib.SMTP,
    data: MimeStream,
    timeout: float,  # noqa: ASYNC109 - each step's own timeout, as aiosmtplib's are
) -> bytes:
    """The message, once the server has answered DATA with 354, chunk by chunk with the
    transport's flow control, so that only a chunk at a time is in memory (aiosmtplib's own
    `data()` takes the message in one piece and copies it twice more). Sends every chunk but the
    last, and returns that one with the end mark after it, for `_end_content` to send in one
    write (most messages are one chunk)."""
    protocol = client.protocol
    stuffer = DotStuffer()
    held = b""
    for chunk in data:
        if held:
            if protocol is None or not protocol.is_connected:
                raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
            protocol.write(held)
            # Waits while the socket's send buffer is over its high-water mark (asyncio's flow
            # control, as StreamWriter.drain does), so unsent data never piles up in memory.
            async with asyncio.timeout(timeout):
                await protocol._drain_helper()
        held = stuffer.feed(chunk)
    if protocol is None or not protocol.is_connected:
        # Lost before the last write: nothing was delivered (a transient failure, not unknown).
        raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
    return held + stuffer.end()


async def _end_content(
    client: aiosmtplib.SMTP,
    last: bytes,
    timeout: float,  # noqa: ASYNC109 - passed on to aiosmtplib's read
) -> aiosmtplib.SMTPResponse:
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
    protocol.write(last)
    reply = await protocol.read_response(timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply
