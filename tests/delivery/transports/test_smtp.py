"""delivery/transports/smtp.py: the parts of streaming DATA that the worker tests do not isolate,
8bit bodies for a server that takes them, the envelope's addresses, and how each reply to MAIL,
RCPT and DATA is judged, sent together (PIPELINING) or one by one."""

import re
from datetime import UTC, datetime

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.transports.base import PermanentError, Receipt, TransientError
from postroom.delivery.transports.smtp import DotStuffer, SmtpConfig, SmtpLimits, SmtpTransport
from tests.delivery.mime_oracle import parse_bodies
from tests.servers.smtp import MIB_LINE, hostile_server, smtp_server


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


def _transport(port: int) -> SmtpTransport:
    # A send that waits for a reply that never comes fails within 10 s, not the default minute.
    limits = SmtpLimits(connections=1, timeout=10, message_timeout=20)
    return SmtpTransport(SmtpConfig(host="127.0.0.1", port=port), limits)


async def _send(port: int, message: OutgoingMessage) -> Receipt:
    """The message through a transport of its own, closed after."""
    transport = _transport(port)
    try:
        return await transport.send(message)
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


@pytest.fixture(params=[True, False], ids=["pipelined", "one-by-one"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the server offers PIPELINING, and so whether MAIL, RCPT and DATA go together."""
    return bool(request.param)


class TestReplies:
    async def test_with_pipelining_mail_rcpt_and_data_go_before_any_reply(self) -> None:
        # This server answers MAIL and RCPT only once DATA has come.
        async with hostile_server(pipelining=True) as server:
            receipt = await _send(server.port, _message("Hello"))
        assert receipt.code == 250
        assert len(server.messages) == 1

    @pytest.mark.parametrize(
        "mail_reply", [b"250 " + MIB_LINE + b"\r\n", b"HTTP/1.1 400 Bad Request\r\n"]
    )
    async def test_replies_to_commands_sent_together_that_are_not_smtp_send_nothing(
        self, mail_reply: bytes
    ) -> None:
        async with hostile_server(pipelining=True, mail_reply=mail_reply) as server:
            with pytest.raises(
                TransientError,
                match=f"^{re.escape(f'not an SMTP server at 127.0.0.1:{server.port}')}$",
            ):
                await _send(server.port, _message("Hello"))
        assert server.messages == []

    async def test_a_recipient_refused_for_good_is_left_out_and_named(
        self, pipelining: bool
    ) -> None:
        with smtp_server(pipelining=pipelining) as smtp:
            smtp.script_rcpt("550 5.1.1 no such user")
            receipt = await _send(
                smtp.port, _message("Hi", to=("gone@example.com", "b@example.com"))
            )
            [received] = smtp.received
        assert received.rcpt_tos == ["b@example.com"]
        assert receipt.code == 250
        assert receipt.text.endswith(
            "(refused recipients: gone@example.com: 550 5.1.1 no such user)"
        )

    async def test_a_recipient_refused_for_now_sends_to_nobody_and_the_next_message_goes(
        self, pipelining: bool
    ) -> None:
        # Sending to the others now and to this one later would send the message twice to them;
        # when the server has already answered DATA with 354, closing the connection drops it.
        with smtp_server(pipelining=pipelining) as smtp:
            smtp.script_rcpt("250 OK", "451 4.2.1 mailbox busy")
            with pytest.raises(
                TransientError, match=re.escape("b@example.com: 4.2.1 mailbox busy")
            ) as error:
                await _send(smtp.port, _message("Hi", to=("a@example.com", "b@example.com")))
            assert error.value.code == 451
            await _send(smtp.port, _message("Next"))
            [received] = smtp.received
        assert received.message["Subject"] == "Your receipt"
        assert "Next" in received.data.decode()

    async def test_every_recipient_refused_is_permanent_and_nothing_is_sent(
        self, pipelining: bool
    ) -> None:
        with smtp_server(pipelining=pipelining) as smtp:
            smtp.script_rcpt("550 5.1.1 no such user", "553 5.1.3 bad address")
            with pytest.raises(PermanentError, match=re.escape("553 5.1.3 bad address")) as error:
                await _send(smtp.port, _message("Hi", to=("a@example.com", "b@example.com")))
            assert smtp.received == []
        assert error.value.code == 550

    async def test_a_refused_sender_is_the_reply_recorded(self, pipelining: bool) -> None:
        with smtp_server(auth=("mailer", "s3cret"), pipelining=pipelining) as smtp:
            with pytest.raises(PermanentError, match="Authentication required") as error:
                await _send(smtp.port, _message("Hi"))
            assert smtp.received == []
        assert error.value.code == 530

    async def test_a_server_that_says_421_and_hangs_up_at_rcpt_is_heard(
        self, pipelining: bool
    ) -> None:
        with smtp_server(pipelining=pipelining) as smtp:
            smtp.script_rcpt("421 4.3.2 shutting down")
            with pytest.raises(TransientError, match="shutting down") as error:
                await _send(smtp.port, _message("Hi"))
            assert smtp.received == []
        assert error.value.code == 421

    async def test_a_pooled_connection_the_server_closed_is_replaced(
        self, pipelining: bool
    ) -> None:
        with smtp_server(pipelining=pipelining) as smtp:
            transport = _transport(smtp.port)
            try:
                await transport.send(_message("First"))
                smtp.drop_connections()
                await transport.send(_message("Second"))
            finally:
                await transport.aclose()
            assert len(smtp.received) == 2
            assert smtp.connections == 2
