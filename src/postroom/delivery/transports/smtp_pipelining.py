"""aiosmtplib's client, able also to send a message's envelope commands together and read
their replies (RFC 2920 PIPELINING): MAIL, RCPT and DATA then cost one round trip, not one each.

aiosmtplib reads one reply per command sent and drops any that arrives before the previous one
was collected, and it makes its protocol itself, in `SMTP._create_connection`, with no hook for
another. `PipeliningClient` is that method for the one way postroom connects (a socket it has
connected itself, so that the destination policy judged the address), on `PipeliningProtocol`.
Both lean on aiosmtplib's internals (pinned in the lock file); the delivery tests cover every
way in (plain, STARTTLS, implicit TLS) against a real server that offers PIPELINING.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, MAX_RESPONSE_LENGTH, SMTPProtocol


@dataclass
class _Group:
    """The replies to commands sent together, as they arrive."""

    expected: int
    done: "asyncio.Future[None]"
    replies: list[aiosmtplib.SMTPResponse] = field(default_factory=list)


class PipeliningProtocol(SMTPProtocol):
    _group: _Group | None = None
    """The commands sent together whose replies are being read; None between groups."""

    async def execute_pipelined(
        self,
        commands: Sequence[Sequence[bytes]],
        timeout: float,  # noqa: ASYNC109 - each step's own timeout, as aiosmtplib's are
    ) -> list[aiosmtplib.SMTPResponse]:
        """Sends `commands` (each its words) in one write and returns their replies in order:
        all of them, or those that came before the server closed the connection. Raises
        SMTPReadTimeoutError if they do not all come within `timeout`."""
        lines = []
        for words in commands:
            if any(COMMAND_INJECTION_REGEX.search(word) for word in words):
                raise ValueError("Command arg contains a prohibited control character")
            lines.append(b" ".join(words) + b"\r\n")
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            group = _Group(len(lines), self._loop.create_future())
            del self._buffer[:]  # nothing sent unasked is taken for a reply
            self._group = group
            try:
                self.write(b"".join(lines))
                await asyncio.wait_for(group.done, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"
                ) from None
            finally:
                self._group = None
                del self._buffer[:]
            return group.replies

    def data_received(self, data: bytes) -> None:
        group = self._group
        if group is None:
            super().data_received(data)
            return
        if group.done.done():
            # More than was asked for, or anything after a reply that was not SMTP or the end
            # of the connection: dropped, as aiosmtplib drops what it did not ask for.
            return
        self._buffer.extend(data)
        try:
            while len(group.replies) < group.expected:
                reply = self._read_response_from_buffer()
                if reply is None:
                    break
                group.replies.append(reply)
        except aiosmtplib.SMTPResponseException as error:
            group.done.set_exception(error)
            return
        if len(group.replies) == group.expected:
            group.done.set_result(None)
        elif len(self._buffer) > MAX_RESPONSE_LENGTH:
            group.done.set_exception(aiosmtplib.SMTPResponseException(-1, "Response too long"))

    def eof_received(self) -> bool:
        self._group_ended()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._group_ended()
        super().connection_lost(exc)

    def _group_ended(self) -> None:
        """The connection ended: the replies that came are all there will be."""
        group = self._group
        if group is not None and not group.done.done():
            group.done.set_result(None)


class PipeliningClient(aiosmtplib.SMTP):
    """aiosmtplib's client on a PipeliningProtocol, connected over the socket it was given."""

    protocol: PipeliningProtocol | None

    async def _create_connection(
        self,
        timeout: float | None,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> aiosmtplib.SMTPResponse:
        if self.loop is None or self.sock is None:
            raise RuntimeError("PipeliningClient connects only over a socket it is given")
        protocol = PipeliningProtocol(
            loop=self.loop, connection_lost_callback=self._on_connection_lost
        )
        tls_context = await self._get_tls_context() if self.use_tls else None
        connecting = self.loop.create_connection(
            lambda: protocol,
            sock=self.sock,
            ssl=tls_context,
            server_hostname=self.hostname if tls_context else None,
            ssl_handshake_timeout=timeout if tls_context else None,
        )
        where = f"{self.hostname} over the socket given"
        try:
            transport, _ = await asyncio.wait_for(connecting, timeout=timeout)
        except TimeoutError as error:
            raise aiosmtplib.SMTPConnectTimeoutError(f"Timed out connecting to {where}") from error
        except OSError as error:
            raise aiosmtplib.SMTPConnectError(f"Error connecting to {where}: {error}") from error
        self.protocol = protocol
        self.transport = transport
        try:
            greeting = await protocol.read_response(timeout=timeout)
        except aiosmtplib.SMTPServerDisconnected as error:
            raise aiosmtplib.SMTPConnectError(f"Error connecting to {where}: {error}") from error
        except aiosmtplib.SMTPTimeoutError as error:
            raise aiosmtplib.SMTPConnectTimeoutError(
                "Timed out waiting for server ready message"
            ) from error
        if greeting.code != 220:
            raise aiosmtplib.SMTPConnectResponseError(greeting.code, greeting.message)
        return greeting
