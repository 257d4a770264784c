"""`postroom bounces` on a real socket, fed by aiosmtplib: reports to a message's bounce address
become events on it; any other address is refused at RCPT. And the other half: SMTP sends carry
the bounce address as their envelope sender."""

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.blocklists import service as blocklists
from postroom.core.bounce_address import bounce_address, message_of
from postroom.core.clock import SystemClock
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery.transports.registry import TransportRegistry
from postroom.delivery.worker import Worker, default_transport
from postroom.events.bounces import BounceHandler, listen
from postroom.settings import EventSettings, Settings
from tests.events.reports import arf, dsn, qmail_bounce, vacation_reply
from tests.factories import make_message
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server
from tests.test_cli import (
    POSTROOM,
    START_TIMEOUT,
    STOP_TIMEOUT,
    environment,
    free_port,
    run_command,
)

DOMAIN = "bounces.example.net"
MAX_BYTES = 64 * 1024


@dataclass
class BounceServer:
    port: int
    box: SecretBox

    def address(self, message_id: str) -> str:
        return bounce_address(self.box, message_id, DOMAIN)

    async def send(self, data: bytes, to: str) -> None:
        """Mails `data` with the null sender, as a reporting server does (RFC 3464 2.1)."""
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port) as smtp:
            await smtp.sendmail("", [to], data)


@pytest.fixture
async def bounces(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[BounceServer]:
    box = SecretBox(settings.stored_secret())
    handler = BounceHandler(sessionmaker, box, EventSettings(bounce_domain=DOMAIN), SystemClock())
    server = await listen(handler, "127.0.0.1", 0, max_bytes=MAX_BYTES)
    async with server:
        yield BounceServer(server.sockets[0].getsockname()[1], box)


async def _events(client: httpx.AsyncClient, message_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/email-messages/{message_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def _blocked(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: str, address: str
) -> bool:
    async with sessionmaker() as session:
        found = await blocklists.blocked(session, organization_id, [address], SystemClock().now())
    return address in found


class TestDeliveryStatusNotifications:
    async def test_hard_bounce_is_a_bounced_event_and_blocklists_the_recipient(
        self,
        bounces: BounceServer,
        client: httpx.AsyncClient,
        organization: auth.NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        message = await make_message(client, to=["gone@example.org", "stays@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(dsn(to=to, recipient="gone@example.org"), to)

        [event] = await _events(client, message["id"])
        assert event["type"] == "bounced"
        assert event["bounceType"] == "hard"
        assert event["source"] == "smtp"
        assert event["recipient"] == "gone@example.org"
        assert "5.1.1" in event["diagnostic"]
        assert event["raw"]["reportType"] == "delivery-status"
        assert event["raw"]["perRecipient"]["Status"] == "5.1.1"
        assert event["raw"]["perMessage"]["Reporting-MTA"] == "dns; mx.example.net"
        assert await _blocked(sessionmaker, organization.organization_id, "gone@example.org")
        assert not await _blocked(sessionmaker, organization.organization_id, "stays@example.org")

    async def test_the_same_report_sent_again_is_recorded_once(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["gone@example.org"])
        to = bounces.address(message["id"])
        report = dsn(to=to, recipient="gone@example.org")

        await bounces.send(report, to)
        await bounces.send(report, to)

        assert len(await _events(client, message["id"])) == 1

    async def test_4xx_status_is_a_soft_bounce(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["full@example.org"])
        to = bounces.address(message["id"])

        report = dsn(
            to=to,
            recipient="full@example.org",
            status="4.2.2",
            diagnostic="452 4.2.2 Mailbox full",
        )
        await bounces.send(report, to)

        [event] = await _events(client, message["id"])
        assert (event["type"], event["bounceType"]) == ("bounced", "soft")
        assert event["diagnostic"] == "smtp; 452 4.2.2 Mailbox full"

    async def test_delayed_is_deferred_and_delivered_is_delivered(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["slow@example.org"])
        to = bounces.address(message["id"])

        delayed = dsn(
            to=to,
            recipient="slow@example.org",
            action="delayed",
            status="4.4.1",
            diagnostic="421 4.4.1 Connection timed out",
            report_id="delayed",
        )
        await bounces.send(delayed, to)
        delivered = dsn(
            to=to,
            recipient="slow@example.org",
            action="delivered",
            status="2.0.0",
            diagnostic="250 2.0.0 Ok",
            report_id="delivered",
        )
        await bounces.send(delivered, to)

        events = await _events(client, message["id"])
        assert [(e["type"], e["bounceType"]) for e in events] == [
            ("deferred", None),
            ("delivered", None),
        ]

    async def test_a_recipient_the_message_never_had_is_not_named(
        self,
        bounces: BounceServer,
        client: httpx.AsyncClient,
        organization: auth.NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        # Whoever got the message knows its bounce address: a forged report about someone else
        # is kept on the message, but blocklists no one.
        message = await make_message(client, to=["reader@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(dsn(to=to, recipient="stranger@example.org"), to)

        [event] = await _events(client, message["id"])
        assert (event["type"], event["recipient"]) == ("bounced", None)
        assert not await _blocked(
            sessionmaker, organization.organization_id, "stranger@example.org"
        )

    async def test_one_report_to_two_bounce_addresses_is_an_event_on_each(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        first = await make_message(client, to=["gone@example.org"])
        second = await make_message(client, to=["gone@example.org"])
        addresses = [bounces.address(first["id"]), bounces.address(second["id"])]

        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bounces.port) as smtp:
            await smtp.sendmail("", addresses, dsn(to=addresses[0], recipient="gone@example.org"))

        for message in (first, second):
            [event] = await _events(client, message["id"])
            assert (event["type"], event["recipient"]) == ("bounced", "gone@example.org")

    async def test_report_is_refused_for_now_when_it_cannot_be_recorded(
        self, settings: Settings, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        # A database that cannot be opened: the reporting server must keep the report.
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'postroom.db'}")
        box = SecretBox(settings.stored_secret())
        handler = BounceHandler(
            create_sessionmaker(engine), box, EventSettings(bounce_domain=DOMAIN), SystemClock()
        )
        message = await make_message(client, to=["gone@example.org"])
        to = bounce_address(box, message["id"], DOMAIN)
        try:
            async with await listen(handler, "127.0.0.1", 0) as server:
                port = server.sockets[0].getsockname()[1]
                with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                    await BounceServer(port, box).send(dsn(to=to, recipient="gone@example.org"), to)
        finally:
            await engine.dispose()

        assert refused.value.code == 451
        assert await _events(client, message["id"]) == []


class TestFeedbackReports:
    async def test_arf_report_is_a_complaint(
        self,
        bounces: BounceServer,
        client: httpx.AsyncClient,
        organization: auth.NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        message = await make_message(client, to=["annoyed@example.org", "fine@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(arf(to=to, recipient="annoyed@example.org"), to)

        [event] = await _events(client, message["id"])
        assert event["type"] == "complained"
        assert event["recipient"] == "annoyed@example.org"
        assert event["diagnostic"] == "abuse"
        assert event["raw"]["feedbackReport"]["Feedback-Type"] == "abuse"
        assert await _blocked(sessionmaker, organization.organization_id, "annoyed@example.org")

    async def test_redacted_complainer_of_a_one_recipient_message_is_that_recipient(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["only@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(arf(to=to, recipient=None), to)

        [event] = await _events(client, message["id"])
        assert (event["type"], event["recipient"]) == ("complained", "only@example.org")

    async def test_not_spam_report_records_nothing(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["happy@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(arf(to=to, recipient="happy@example.org", feedback_type="not-spam"), to)

        assert await _events(client, message["id"]) == []


class TestOtherMail:
    async def test_non_standard_bounce_is_found_by_flufl_bounce(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["gone@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(qmail_bounce(to=to, recipient="gone@example.org"), to)

        [event] = await _events(client, message["id"])
        assert (event["type"], event["bounceType"]) == ("bounced", "hard")
        assert event["recipient"] == "gone@example.org"
        assert event["raw"]["reportType"] == "detected"

    async def test_auto_reply_is_accepted_and_records_nothing(
        self,
        bounces: BounceServer,
        client: httpx.AsyncClient,
        organization: auth.NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        message = await make_message(client, to=["someone@example.org"])
        to = bounces.address(message["id"])

        await bounces.send(vacation_reply(to=to), to)

        assert await _events(client, message["id"]) == []
        assert not await _blocked(sessionmaker, organization.organization_id, "someone@example.org")

    async def test_hostile_bytes_are_stored_safely(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["gone@example.org"])
        to = bounces.address(message["id"])
        report = dsn(
            to=to,
            recipient="gone@example.org",
            # Folded onto many lines (no line may pass 1000 bytes), unfolded by the parser.
            diagnostic="550 5.1.1 \x00nul \xff\xfe bytes" + "\n x" * 5_000,
        )

        await bounces.send(report.replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"), to)

        [event] = await _events(client, message["id"])
        assert event["bounceType"] == "hard"
        assert "\x00" not in event["diagnostic"]
        assert len(event["diagnostic"]) <= 2_000
        assert all(len(v) <= 1_000 for v in event["raw"]["perRecipient"].values())

    async def test_report_over_the_size_limit_is_refused(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client, to=["gone@example.org"])
        to = bounces.address(message["id"])
        huge = dsn(to=to, recipient="gone@example.org") + (b"z" * 998 + b"\r\n") * 70

        # Without SIZE on MAIL (which aiosmtplib would send, and which is refused at once), as
        # a sender that does not declare it: the data is counted as it arrives.
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bounces.port) as smtp:
            await smtp.mail("")
            await smtp.rcpt(to)
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await smtp.data(huge)

        assert refused.value.code == 552
        assert await _events(client, message["id"]) == []


class TestRefusedRecipients:
    @pytest.mark.parametrize(
        "address",
        [
            "postmaster@bounces.example.net",
            "someone@example.org",
            "bounces+nothing@bounces.example.net",
        ],
    )
    async def test_other_addresses_are_refused_at_rcpt(
        self, bounces: BounceServer, address: str
    ) -> None:
        await self._refused(bounces, address)

    async def test_forged_tag_is_refused_at_rcpt(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client)
        real = bounces.address(message["id"])
        local, _, domain = real.partition("@")
        forged = local[:-4] + ("aaaa" if not local.endswith("aaaa") else "bbbb") + "@" + domain

        await self._refused(bounces, forged)

    async def test_token_made_with_another_secret_is_refused(self, bounces: BounceServer) -> None:
        other = bounce_address(SecretBox("another-secret-entirely"), new_id("mail_msg_"), DOMAIN)

        await self._refused(bounces, other)

    async def test_valid_address_for_another_domain_is_refused(
        self, bounces: BounceServer, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client)
        elsewhere = bounce_address(bounces.box, message["id"], "example.org")

        await self._refused(bounces, elsewhere)

    async def _refused(self, bounces: BounceServer, address: str) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bounces.port) as smtp:
            await smtp.mail("")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await smtp.rcpt(address)
        assert refused.value.code == 550


async def _send_with_bounce_domain(h: Harness, **message: Any) -> str:
    """Delivers one new outbox message by a worker whose settings have the bounce domain; its id."""
    settings = h.settings.model_copy(update={"events": EventSettings(bounce_domain=DOMAIN)})
    transports = TransportRegistry(default_transport(settings))
    worker = Worker(
        sessionmaker=h.sessionmaker,
        settings=settings,
        box=SecretBox(settings.stored_secret()),
        transports=transports,
        clock=h.clock,
        rng=random.Random(7),
        name="bounce-worker",
    )
    try:
        created = await make_message(h.client, status="outbox", **message)
        assert await worker.run_once() == 1
    finally:
        await transports.aclose()
    assert (await h.message(created["id"]))["status"] == "sent"
    return str(created["id"])


class TestReturnPath:
    async def test_server_wide_smtp_send_uses_the_messages_bounce_address(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _send_with_bounce_domain(h)

                [received] = smtp.received
                assert received.mail_from.startswith("bounces+")
                assert received.mail_from.endswith(f"@{DOMAIN}")
                box = SecretBox(h.settings.stored_secret())
                assert message_of(box, received.mail_from, DOMAIN) == message_id
                assert received.message["From"] == "sender@example.com"

    async def test_smtp_credential_send_uses_the_messages_bounce_address(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory() as h:
                credential = await h.client.post(
                    "/service-credentials/smtp",
                    json={"type": "smtp", "host": "127.0.0.1", "port": smtp.port},
                )
                assert credential.status_code == 201, credential.text
                message_id = await _send_with_bounce_domain(
                    h, credentialHash=credential.json()["id"]
                )

                [received] = smtp.received
                box = SecretBox(h.settings.stored_secret())
                assert message_of(box, received.mail_from, DOMAIN) == message_id

    async def test_without_bounce_domain_the_sender_is_the_envelope_sender(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                await make_message(h.client, status="outbox")
                assert await h.deliver() == 1

                [received] = smtp.received
                assert received.mail_from == "sender@example.com"


class TestCommand:
    async def test_help_describes_the_command(self, database_url: str, tmp_path: Path) -> None:
        code, out, _ = await run_command(environment(database_url, tmp_path), "bounces", "--help")

        assert code == 0
        assert "bounce" in out.lower()

    async def test_refuses_to_start_without_a_bounce_domain(
        self, database_url: str, tmp_path: Path
    ) -> None:
        code, _, err = await run_command(environment(database_url, tmp_path), "bounces")

        assert code == 2
        assert "POSTROOM_EVENTS__BOUNCE_DOMAIN" in err

    async def test_the_running_command_records_a_bounce_and_stops_on_sigterm(
        self, database_url: str, tmp_path: Path, client: httpx.AsyncClient
    ) -> None:
        secret = "bounces-command-test-secret-key"
        port = free_port()
        env = environment(database_url, tmp_path) | {
            "POSTROOM_SECRET_KEY": secret,
            "POSTROOM_EVENTS__BOUNCE_DOMAIN": DOMAIN,
            "POSTROOM_EVENTS__BOUNCES_PORT": str(port),
        }
        message = await make_message(client, to=["gone@example.org"])
        to = bounce_address(SecretBox(secret), message["id"], DOMAIN)
        process = await asyncio.create_subprocess_exec(
            POSTROOM,
            "bounces",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:

            async def listening() -> bool:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return False
                writer.close()
                await writer.wait_closed()
                return True

            await eventually(listening, timeout=START_TIMEOUT, what="postroom bounces to listen")
            await BounceServer(port, SecretBox(secret)).send(
                dsn(to=to, recipient="gone@example.org"), to
            )

            [event] = await _events(client, message["id"])
            assert (event["type"], event["bounceType"]) == ("bounced", "hard")
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), STOP_TIMEOUT)
        assert process.returncode == 0
