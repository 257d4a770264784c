"""The SMTP test server, driven by a real client (aiosmtplib)."""

import asyncio
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.servers.smtp import SmtpServer, smtp_server, trust_ca

USER = ("postroom", "s3cret")


def make_email(subject: str = "Hello", to: str = "bob@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Line one.\nLine two.\n")
    return message


def client(server: SmtpServer, **options: object) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        local_hostname="localhost",
        timeout=5,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


class TestRecording:
    async def test_plain_send_is_recorded_with_envelope_and_headers(
        self, server: SmtpServer
    ) -> None:
        async with client(server) as smtp:
            await smtp.send_message(
                make_email(subject="Invoice 42"),
                sender="bounces@example.com",
                recipients=["bob@example.com", "carol@example.com"],
            )

        [got] = await server.wait_for(1)
        assert got.mail_from == "bounces@example.com"
        assert got.rcpt_tos == ["bob@example.com", "carol@example.com"]
        assert got.message["Subject"] == "Invoice 42"
        assert got.message["From"].addresses[0].addr_spec == "alice@example.com"
        assert got.message.get_content() == "Line one.\nLine two.\n"
        assert b"Line one.\r\nLine two.\r\n" in got.data
        assert got.authenticated_as is None
        assert got.reply.startswith("250 2.0.0 OK queued as ")
        assert server.data_commands == 1

    async def test_two_messages_over_one_connection_count_one_connection(
        self, server: SmtpServer
    ) -> None:
        async with client(server) as smtp:
            await smtp.send_message(make_email(subject="first"))
            await smtp.rset()
            await smtp.send_message(make_email(subject="second"))

        got = await server.wait_for(2)
        assert [r.message["Subject"] for r in got] == ["first", "second"]
        assert server.connections == 1
        assert got[0].reply != got[1].reply

    async def test_many_connections_at_once_are_all_recorded(self, server: SmtpServer) -> None:
        async def send(n: int) -> None:
            async with client(server) as smtp:
                await smtp.send_message(make_email(subject=f"n{n}"))

        await asyncio.gather(*(send(n) for n in range(50)))

        got = await server.wait_for(50)
        assert sorted(int(r.message["Subject"][1:]) for r in got) == list(range(50))
        assert server.connections == 50

    async def test_clear_forgets_messages_scripts_and_counters(self, server: SmtpServer) -> None:
        async with client(server) as smtp:
            await smtp.send_message(make_email())
        server.script("451 4.3.0 busy")

        server.clear()

        assert (server.received, server.connections, server.data_commands) == ([], 0, 0)
        async with client(server) as smtp:
            await smtp.send_message(make_email())
        assert len(await server.wait_for(1)) == 1


class TestScript:
    async def test_scripted_451_then_default_250(self, server: SmtpServer) -> None:
        server.script("451 4.3.0 Try again in 5 minutes")

        async with client(server) as smtp:
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await smtp.send_message(make_email(subject="first try"))
            assert refused.value.code == 451
            assert refused.value.message == "4.3.0 Try again in 5 minutes"
            await smtp.send_message(make_email(subject="second try"))

        [got] = await server.wait_for(1)
        assert got.message["Subject"] == "second try"
        assert server.data_commands == 2

    async def test_scripted_2xx_is_recorded_with_that_reply(self, server: SmtpServer) -> None:
        server.script("250 2.0.0 Ok: queued as ABC123")

        async with client(server) as smtp:
            response = await smtp.send_message(make_email())

        assert response[1] == "2.0.0 Ok: queued as ABC123"
        [got] = await server.wait_for(1)
        assert got.reply == "250 2.0.0 Ok: queued as ABC123"

    async def test_scripted_421_closes_the_connection(self, server: SmtpServer) -> None:
        server.script("421 4.3.2 shutting down")

        smtp = client(server)
        await smtp.connect()
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.send_message(make_email())

        assert refused.value.code == 421
        assert not smtp.is_connected
        assert server.received == []

    async def test_scripted_550_on_rcpt_refuses_only_that_recipient(
        self, server: SmtpServer
    ) -> None:
        server.script_rcpt("550 5.1.1 no such user")

        async with client(server) as smtp:
            refused, _ = await smtp.send_message(
                make_email(), recipients=["ghost@example.com", "bob@example.com"]
            )

        assert refused["ghost@example.com"].code == 550
        [got] = await server.wait_for(1)
        assert got.rcpt_tos == ["bob@example.com"]

    async def test_scripted_550_on_only_recipient_sends_nothing(self, server: SmtpServer) -> None:
        server.script_rcpt("550 5.1.1 no such user")

        async with client(server) as smtp:
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                await smtp.send_message(make_email(), recipients=["ghost@example.com"])

        assert (server.received, server.data_commands) == ([], 0)

    def test_script_refuses_what_is_not_a_reply(self, server: SmtpServer) -> None:
        with pytest.raises(ValueError, match="not a one-line SMTP reply"):
            server.script("OK")


class TestAuth:
    async def test_mail_before_auth_is_530(self) -> None:
        with smtp_server(auth=USER) as server:
            async with client(server) as smtp:
                with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                    await smtp.send_message(make_email())

        assert refused.value.code == 530

    @pytest.mark.parametrize("mechanism", ["auth_plain", "auth_login", "auth_crammd5"])
    async def test_wrong_password_is_535(self, mechanism: str) -> None:
        with smtp_server(auth=USER) as server:
            async with client(server) as smtp:
                with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
                    await getattr(smtp, mechanism)("postroom", "wrong")

        assert refused.value.code == 535

    @pytest.mark.parametrize("mechanism", ["auth_plain", "auth_login", "auth_crammd5"])
    async def test_right_password_is_recorded_as_authenticated(self, mechanism: str) -> None:
        with smtp_server(auth=USER) as server:
            async with client(server) as smtp:
                await getattr(smtp, mechanism)(*USER)
                await smtp.send_message(make_email())

            [got] = await server.wait_for(1)

        assert got.authenticated_as == "postroom"


class TestTls:
    async def test_starttls_verified_by_the_test_ca_then_auth(self) -> None:
        with smtp_server(auth=USER, starttls=True) as server:
            async with client(
                server, start_tls=True, tls_context=trust_ca(), username=USER[0], password=USER[1]
            ) as smtp:
                await smtp.send_message(make_email())

            [got] = await server.wait_for(1)

        assert got.authenticated_as == "postroom"

    async def test_starttls_is_required_before_mail(self) -> None:
        with smtp_server(starttls=True) as server:
            async with client(server, start_tls=False) as smtp:
                with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                    await smtp.send_message(make_email())

        assert refused.value.code == 530

    async def test_starttls_certificate_fails_without_the_test_ca(self) -> None:
        with smtp_server(starttls=True) as server:
            smtp = client(server, start_tls=True, tls_context=ssl.create_default_context())
            with pytest.raises(ssl.SSLCertVerificationError):
                await smtp.connect()
            assert not smtp.is_connected

    async def test_implicit_tls(self) -> None:
        with smtp_server(implicit_tls=True, auth=USER) as server:
            async with client(
                server, use_tls=True, tls_context=trust_ca(), username=USER[0], password=USER[1]
            ) as smtp:
                await smtp.send_message(make_email())

            [got] = await server.wait_for(1)

        assert got.authenticated_as == "postroom"


class TestWaiting:
    async def test_wait_for_times_out(self, server: SmtpServer) -> None:
        with pytest.raises(TimeoutError, match="0 of 1 messages"):
            await server.wait_for(1, timeout=0.05)

    async def test_hold_data_seconds_outlasts_a_client_timeout(self) -> None:
        with smtp_server(hold_data_seconds=5) as server:
            async with client(server) as smtp:
                with pytest.raises(aiosmtplib.SMTPTimeoutError):
                    await smtp.send_message(make_email(), timeout=0.2)

        assert server.received == []
