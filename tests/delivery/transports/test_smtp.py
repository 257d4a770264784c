"""delivery/transports/smtp.py: the parts of streaming DATA that the worker tests do not isolate,
8bit bodies for a server that takes them, and the envelope's addresses."""

from datetime import UTC, datetime

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.transports.base import PermanentError
from postroom.delivery.transports.smtp import DotStuffer, SmtpConfig, SmtpLimits, SmtpTransport
from tests.delivery.mime_oracle import parse_bodies
from tests.servers.smtp import hostile_server, smtp_server


class TestDotStuffer:
    @pytest.mark.parametrize(
        "chunks",
        [
            [b".a\r\nb\r\n.c\r\n"],
            [b".a\r\n", b".b\r\n", b"c"],
            [b"a\r", b"\n.", b"b\r\n"],
            [b"a\r\n", b"", b".b"],
        ],
    )
    def test_a_dot_at_a_line_start_is_doubled_wherever_the_chunks_split(
        self, chunks: list[bytes]
    ) -> None:
        stuffer = DotStuffer()
        sent = b"".join(stuffer.feed(c) for c in chunks) + stuffer.end()
        whole = b"".join(chunks)
        expected = whole.replace(b"\r\n.", b"\r\n..")
        expected = b"." + expected if expected.startswith(b".") else expected
        if not expected.endswith(b"\r\n"):
            expected += b"\r\n"
        assert sent == expected + b".\r\n"

    def test_the_end_mark_follows_a_line_break(self) -> None:
        stuffer = DotStuffer()
        assert stuffer.feed(b"done\r\n") == b"done\r\n"
        assert stuffer.end() == b".\r\n"


def _message(text: str, *, to: tuple[str, ...] = ("to@example.com",)) -> OutgoingMessage:
    return OutgoingMessage(
        id="mail_msg_01JE",
        sender="app@example.com",
        to=to,
        cc=(),
        bcc=(),
        subject="Your receipt",
        text=text,
        html=f"<p>{text}</p>",
        date=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
    )


async def _send(port: int, message: OutgoingMessage) -> None:
    """The message through a transport of its own, closed after."""
    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=port), SmtpLimits(connections=1))
    try:
        await transport.send(message)
    finally:
        await transport.aclose()


class TestEightBitBodies:
    async def test_a_server_with_8bitmime_gets_utf8_text_as_8bit_and_body_declared(self) -> None:
        with smtp_server() as smtp:
            await _send(smtp.port, _message("Hello Zoë, your total is € 215.00"))
            [received] = smtp.received
        assert "BODY=8BITMIME" in received.mail_options
        assert "Hello Zoë, your total is € 215.00\r\n".encode() in received.data
        plain = parse_bodies(received.data).get_body(("plain",))
        assert plain is not None and plain["Content-Transfer-Encoding"] == "8bit"
        assert plain.get_content() == "Hello Zoë, your total is € 215.00\n"

    async def test_ascii_text_is_7bit_and_the_body_not_declared(self) -> None:
        with smtp_server() as smtp:
            await _send(smtp.port, _message("Hello, your total is EUR 215.00"))
            [received] = smtp.received
        assert "BODY=8BITMIME" not in received.mail_options
        assert received.data.isascii()

    async def test_a_server_without_8bitmime_gets_quoted_printable(self) -> None:
        async with hostile_server() as server:  # its EHLO announces no extension
            await _send(server.port, _message("Hello Zoë"))
        [content] = server.messages
        assert content.isascii()
        plain = parse_bodies(content).get_body(("plain",))
        assert plain is not None and plain["Content-Transfer-Encoding"] == "quoted-printable"
        assert plain.get_content() == "Hello Zoë\n"


class TestEnvelope:
    @pytest.mark.parametrize(
        "recipient", ["to@example.com\r\nRCPT TO:<other@example.com>", "to@example.com> X=1", ""]
    )
    async def test_an_address_a_command_line_cannot_carry_is_refused_and_nothing_sent(
        self, recipient: str
    ) -> None:
        with smtp_server() as smtp:
            with pytest.raises(PermanentError, match="envelope address"):
                await _send(smtp.port, _message("Hello", to=(recipient,)))
            await _send(smtp.port, _message("Hello"))
            [received] = smtp.received
        assert received.rcpt_tos == ["to@example.com"]
