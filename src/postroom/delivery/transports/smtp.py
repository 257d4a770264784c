"""SMTP with aiosmtplib: pooled connections per mail server, reused across messages, with a
bounded number at once, a timeout on every step, and each failure classified."""

import asyncio
import re
import ssl
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from postroom.delivery.mime import MimeStream, OutgoingMessage
from postroom.delivery.transports.base import (
    OutcomeUnknownError,
    PermanentError,
    Receipt,
    TransientError,
)

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
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("expected smtp://[user:pass@]host[:port][?encryption=tls]")
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
            port=parts.port or (465 if encryption == "ssl" else 25),
            encryption=encryption,  # type: ignore[arg-type]
            auth=auth,  # type: ignore[arg-type]
            username=username,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True)
class SmtpLimits:
    connections: int = 4
    connect_timeout: float = 15
    timeout: float = 60
    tls_context: ssl.SSLContext | None = None


_WAIT = re.compile(r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def retry_after_hint(text: str) -> float | None:
    """A wait a server asked for in its reply text ("try again in 5 minutes"), in seconds."""
    match = _WAIT.search(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]


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
        try:
            data = MimeStream(message)
        except OSError as error:
            raise PermanentError(f"cannot read an attachment: {error}") from None
        with data:
            return await self._send(message, data)

    async def _send(self, message: OutgoingMessage, data: MimeStream) -> Receipt:
        async with self._slots:
            reused = bool(self._idle)
            client = self._idle.pop() if reused else await self._connect()
            try:
                receipt = await self._transaction(client, message, data)
            except _StaleConnection:
                client.close()
                if not reused:
                    raise TransientError("the server closed the connection before MAIL") from None
                # A pooled connection the server had closed while idle: nothing was sent on
                # it, so one more try on a new connection is safe.
                client = await self._connect()
                try:
                    receipt = await self._transaction(client, message, data)
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
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.encryption == "ssl",
            start_tls=config.encryption == "tls",
            tls_context=limits.tls_context,
            timeout=limits.timeout,
        )
        try:
            await client.connect(timeout=limits.connect_timeout)
            if config.auth != "none":
                await self._login(client)
        except aiosmtplib.SMTPAuthenticationError as error:
            client.close()
            raise PermanentError(
                f"authentication failed: {error.code} {error.message}", code=error.code
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            client.close()
            raise _refusal(error.code, error.message) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            client.close()
            raise TransientError(
                f"cannot connect to {config.host}:{config.port}: {error}"
            ) from None
        return client

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        username, password = self.config.username or "", self.config.password or ""
        # STARTTLS resets the session; the explicit AUTH methods do not say EHLO again.
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if self.config.auth == "plain":
            await client.auth_plain(username, password)
        elif self.config.auth == "login":
            await client.auth_login(username, password)
        else:
            await client.auth_crammd5(username, password)

    async def _transaction(
        self, client: aiosmtplib.SMTP, message: OutgoingMessage, data: MimeStream
    ) -> Receipt:
        options = ["SMTPUTF8"] if message.needs_smtputf8 else []
        encoding = "utf-8" if options else "ascii"
        data_sent = False
        try:
            try:
                await client.mail(message.sender, options=options, encoding=encoding)
            except aiosmtplib.SMTPServerDisconnected:
                raise _StaleConnection from None
            refused: list[str] = []
            for recipient in message.recipients:
                try:
                    await client.rcpt(recipient, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as error:
                    if error.code < 500:
                        # A partial send now and the rest later would deliver twice to some.
                        await client.rset()
                        raise _refusal(error.code, f"{recipient}: {error.message}") from None
                    refused.append(f"{recipient}: {error.code} {error.message}")
            if len(refused) == len(message.recipients):
                await client.rset()
                raise PermanentError("; ".join(refused), code=550)
            end_mark = await _send_content(client, data, self.limits.timeout)
            # Only the final "." lets the server accept the message: until it is written, a
            # failure leaves nothing delivered.
            data_sent = True
            reply = await _end_content(client, end_mark, self.limits.timeout)
        except aiosmtplib.SMTPResponseException as error:
            raise _refusal(error.code, error.message) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            if data_sent:
                raise OutcomeUnknownError(
                    f"connection lost waiting for the reply to DATA: {error}"
                ) from None
            raise TransientError(f"connection lost before DATA: {error}") from None
        text = reply.message
        if refused:
            text += " (refused recipients: " + "; ".join(refused) + ")"
        return Receipt(reply.code, text)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


class _StaleConnection(Exception):
    pass


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
    """DATA, then the message chunk by chunk with the transport's flow control, so that only a
    chunk at a time is in memory (aiosmtplib's own `data()` takes the message in one piece and
    copies it twice more). Returns the end mark, which `_end_content` sends."""
    start = await client.execute_command(b"DATA", timeout=timeout)
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    stuffer = DotStuffer()
    for chunk in data:
        if protocol is None or not protocol.is_connected:
            raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
        protocol.write(stuffer.feed(chunk))
        # Waits while the socket's send buffer is over its high-water mark (asyncio's flow
        # control, as StreamWriter.drain does), so unsent data never piles up in memory.
        async with asyncio.timeout(timeout):
            await protocol._drain_helper()
    return stuffer.end()


async def _end_content(
    client: aiosmtplib.SMTP,
    end_mark: bytes,
    timeout: float,  # noqa: ASYNC109 - passed on to aiosmtplib's read
) -> aiosmtplib.SMTPResponse:
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
    protocol.write(end_mark)
    reply = await protocol.read_response(timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply
