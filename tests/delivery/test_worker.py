"""The worker against a real SMTP server on loopback: delivered, retried, failed, recovered."""

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from postroom.delivery import service
from postroom.delivery.models import QueuedMessage, WorkerHeartbeat
from postroom.delivery.worker import InFlight
from postroom.messages.models import EmailMessage
from tests.factories import make_message
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server, write_ca_pem


def _smtp_url(port: int) -> str:
    return f"smtp://127.0.0.1:{port}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class TestDelivered:
    async def test_outbox_message_arrives_with_headers_bodies_and_envelope(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                created = await make_message(
                    h.client,
                    status="outbox",
                    to=["to@example.com"],
                    cc=["cc@example.com"],
                    bcc=["hidden@example.com"],
                    subject="Your invoice",
                    text="Plain body",
                    html="<p>HTML body</p>",
                )
                assert await h.deliver() == 1

                [received] = smtp.received
                assert received.mail_from == "sender@example.com"
                assert sorted(received.rcpt_tos) == [
                    "cc@example.com",
                    "hidden@example.com",
                    "to@example.com",
                ]
                mail = received.message
                assert mail["From"] == "sender@example.com"
                assert mail["To"] == "to@example.com"
                assert mail["Cc"] == "cc@example.com"
                assert mail["Bcc"] is None
                assert b"hidden@example.com" not in received.data
                assert mail["Subject"] == "Your invoice"
                assert mail["Date"] is not None
                assert mail["Message-ID"] == f"<{created['id']}@example.com>"
                assert mail.get_content_type() == "multipart/alternative"
                text_part = mail.get_body(("plain",))
                html_part = mail.get_body(("html",))
                assert text_part is not None and text_part.get_content().strip() == "Plain body"
                assert html_part is not None
                assert html_part.get_content().strip() == "<p>HTML body</p>"

                record = await h.message(created["id"])
                assert record["status"] == "sent"
                assert record["sentTime"] is not None
                assert record["responseCode"] == 250
                assert record["responseBody"] == received.reply.removeprefix("250 ")
                [attempt] = await h.attempts(created["id"])
                assert attempt["outcome"] == "sent"
                assert attempt["number"] == 1
                assert attempt["responseCode"] == 250
                assert attempt["transport"] == "smtp"

    async def test_draft_patched_to_outbox_is_delivered(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                draft = await make_message(h.client)
                assert await h.deliver() == 0
                patched = await h.client.patch(
                    f"/email-messages/{draft['id']}", json={"status": "outbox"}
                )
                assert patched.status_code == 200
                assert await h.deliver() == 1
                assert len(smtp.received) == 1
                assert (await h.message(draft["id"]))["status"] == "sent"

    async def test_connections_are_reused_across_messages(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(
                smtp_url=_smtp_url(smtp.port), connections_per_credential=1
            ) as h:
                for _ in range(5):
                    await make_message(h.client, status="outbox")
                await h.deliver()
                await make_message(h.client, status="outbox")
                await h.deliver()
                assert len(smtp.received) == 6
                assert smtp.connections == 1


class TestAuthAndTls:
    async def test_credential_with_login_over_starttls_delivers(
        self, harness_factory: HarnessFactory, tmp_path: Path
    ) -> None:
        with smtp_server(auth=("mailer", "s3cret-pass"), starttls=True) as smtp:
            async with harness_factory(ca_file=write_ca_pem(tmp_path / "ca.pem")) as h:
                credential = await h.client.post(
                    "/service-credentials/smtp",
                    json={
                        "type": "smtp",
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "encryption": "tls",
                        "auth": {"type": "login", "username": "mailer", "password": "s3cret-pass"},
                    },
                )
                assert credential.status_code == 201, credential.text
                created = await make_message(
                    h.client, status="outbox", credentialHash=credential.json()["id"]
                )
                await h.deliver()
                [received] = smtp.received
                assert received.authenticated_as == "mailer"
                record = await h.message(created["id"])
                assert record["status"] == "sent"
                [attempt] = await h.attempts(created["id"])
                assert attempt["credentialHash"] == credential.json()["id"]

    async def test_wrong_password_fails_the_message(
        self, harness_factory: HarnessFactory, tmp_path: Path
    ) -> None:
        with smtp_server(auth=("mailer", "right"), starttls=True) as smtp:
            async with harness_factory(ca_file=write_ca_pem(tmp_path / "ca.pem")) as h:
                credential = await h.client.post(
                    "/service-credentials/smtp",
                    json={
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "encryption": "tls",
                        "auth": {"type": "plain", "username": "mailer", "password": "wrong"},
                    },
                )
                created = await make_message(
                    h.client, status="outbox", credentialHash=credential.json()["id"]
                )
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "failed"
                assert record["responseCode"] == 535
                assert "authentication failed" in record["responseBody"]
                assert smtp.received == []

    async def test_inactive_credential_fails_the_message_with_a_clear_reason(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory() as h:
                credential = (
                    await h.client.post(
                        "/service-credentials/smtp", json={"host": "127.0.0.1", "port": smtp.port}
                    )
                ).json()
                created = await make_message(
                    h.client, status="outbox", credentialHash=credential["id"]
                )
                await h.client.patch(
                    f"/service-credentials/smtp/{credential['id']}", json={"status": "inactive"}
                )
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "failed"
                assert record["responseBody"] == (
                    f"credential {credential['id']} is inactive; nothing was sent"
                )
                assert smtp.received == []


class TestFailures:
    async def test_550_fails_at_once(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                smtp.script("550 5.7.1 Message rejected as spam")
                created = await make_message(h.client, status="outbox")
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "failed"
                assert record["responseCode"] == 550
                assert record["responseBody"] == "5.7.1 Message rejected as spam"
                assert [a["outcome"] for a in await h.attempts(created["id"])] == ["permanent"]
                assert await h.retry_all() == 0

    async def test_451_twice_then_250_ends_sent_after_three_attempts(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                smtp.script("451 4.3.0 Temporary failure", "451 4.3.0 Temporary failure")
                created = await make_message(h.client, status="outbox")
                await h.deliver()
                waiting = await h.message(created["id"])
                assert waiting["status"] == "outbox"
                assert waiting["responseCode"] == 451
                assert waiting["responseBody"] == "4.3.0 Temporary failure"
                assert await h.deliver() == 0  # not due until its backoff has passed
                await h.retry_all()
                await h.retry_all()
                record = await h.message(created["id"])
                assert record["status"] == "sent"
                attempts = await h.attempts(created["id"])
                assert [(a["number"], a["outcome"], a["responseCode"]) for a in attempts] == [
                    (1, "transient", 451),
                    (2, "transient", 451),
                    (3, "sent", 250),
                ]
                assert len(smtp.received) == 1

    async def test_unreachable_server_backs_off_then_fails_after_max_attempts(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(smtp_url=_smtp_url(_closed_port())) as h:
            created = await make_message(h.client, status="outbox")
            await h.deliver()
            first = await h.message(created["id"])
            assert first["status"] == "outbox"
            assert first["responseCode"] is None
            assert "cannot connect" in first["responseBody"]
            await h.retry_all()
            assert (await h.message(created["id"]))["status"] == "outbox"
            await h.retry_all()
            record = await h.message(created["id"])
            assert record["status"] == "failed"
            assert "no success after 3 attempts" in record["responseBody"]
            assert [a["outcome"] for a in await h.attempts(created["id"])] == ["transient"] * 3

    async def test_backoff_grows_between_attempts(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory(smtp_url=_smtp_url(_closed_port()), max_attempts=5) as h:
            created = await make_message(h.client, status="outbox")
            delays = []
            for _ in range(3):
                before = h.clock.now()
                await h.deliver()
                async with h.sessionmaker() as session:
                    row = await session.get(EmailMessage, created["id"])
                    due = await session.get(QueuedMessage, created["id"])
                    assert row is not None and due is not None
                    delays.append((due.due_at - before).total_seconds())
                h.clock.advance(timedelta(seconds=delays[-1] + 1))
            # base 10s, doubling, each jittered within its upper half
            assert 5 <= delays[0] <= 10 < delays[1] <= 20 < delays[2] <= 40

    async def test_a_longer_wait_asked_for_by_the_server_is_honoured(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                smtp.script("451 4.7.1 Greylisted, try again in 5 minutes")
                created = await make_message(h.client, status="outbox")
                before = h.clock.now()
                await h.deliver()
                async with h.sessionmaker() as session:
                    row = await session.get(EmailMessage, created["id"])
                    due = await session.get(QueuedMessage, created["id"])
                    assert row is not None and due is not None
                    assert due.due_at - before >= timedelta(minutes=5)


class TestHeaderInjection:
    async def test_subject_with_line_breaks_is_refused_by_the_api(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            response = await h.client.post(
                "/email-messages",
                json={
                    "from": "a@example.com",
                    "to": ["b@example.com"],
                    "subject": "Hi\r\nBcc: victim@example.com",
                    "text": "t",
                    "html": "h",
                },
            )
            assert response.status_code == 422
            assert response.json()["invalidFields"][0]["field"] == "subject"

    async def test_stored_subject_with_line_breaks_cannot_add_a_header(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                created = await make_message(h.client, status="outbox")
                # A row written by other means (an older version, a manual fix) still cannot
                # inject: the MIME builder folds line breaks away.
                async with h.sessionmaker() as session, session.begin():
                    await session.execute(
                        update(EmailMessage)
                        .where(EmailMessage.id == created["id"])
                        .values(subject="Hi\r\nBcc: victim@example.com\r\nX-Evil: 1")
                    )
                await h.deliver()
                [received] = smtp.received
                assert received.message.get_all("Subject") == [
                    "Hi Bcc: victim@example.com X-Evil: 1"
                ]
                assert received.message["Bcc"] is None
                assert received.message["X-Evil"] is None
                assert "victim@example.com" not in received.rcpt_tos


class TestInterruptedAttempts:
    async def _claim_and_abandon(self, h: Harness) -> None:
        async with h.sessionmaker() as session, session.begin():
            claim = await service.claim(
                session,
                now=h.clock.now(),
                worker="crashed-worker",
                token="lease_crashed",
                settings=h.settings.delivery,
                box=h.worker.box,
                default_transport="smtp",
                blobs=h.worker.blobs,
            )
        assert len(claim.jobs) == 1

    async def test_expired_lease_is_delivered_again_and_the_cut_attempt_is_unknown(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                created = await make_message(h.client, status="outbox")
                await self._claim_and_abandon(h)
                assert await h.deliver() == 0  # leased: nobody else may take it yet
                h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
                assert await h.deliver() == 1
                assert (await h.message(created["id"]))["status"] == "sent"
                attempts = await h.attempts(created["id"])
                assert [a["outcome"] for a in attempts] == ["unknown", "sent"]
                assert "may have been delivered" in attempts[0]["responseBody"]
                assert len(smtp.received) == 1

    async def test_hold_policy_fails_instead_of_sending_again(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port), unknown_outcome="hold") as h:
                created = await make_message(h.client, status="outbox")
                await self._claim_and_abandon(h)
                h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "failed"
                assert record["responseBody"].startswith("held for an operator")
                assert smtp.received == []

    async def test_timeout_after_data_is_an_unknown_outcome_and_is_retried(
        self, harness_factory: HarnessFactory
    ) -> None:
        # Only the end-of-DATA deadline is short: every other step has the harness's 10 s.
        with smtp_server(hold_data_seconds=3) as smtp:
            async with harness_factory(
                smtp_url=_smtp_url(smtp.port), smtp_data_end_timeout_seconds=0.5
            ) as h:
                created = await make_message(h.client, status="outbox")
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "outbox"
                [attempt] = await h.attempts(created["id"])
                assert attempt["outcome"] == "unknown"
                assert "DATA" in attempt["responseBody"]


class TestHeartbeat:
    async def test_a_running_worker_keeps_its_row_fresh_and_removes_it_when_stopped(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:

            async def row() -> WorkerHeartbeat | None:
                async with h.sessionmaker() as session:
                    return await session.get(WorkerHeartbeat, "test-worker")

            h.worker.heartbeat_seconds = 0.05  # instead of 5: the test waits for a beat
            started = h.clock.now()
            stop = asyncio.Event()
            running = asyncio.create_task(h.worker.run(stop))
            try:
                # The first beat is written as the worker starts.
                await eventually(lambda: _exists(row), timeout=30, what="the worker's row")
                first = await row()
                assert first is not None
                assert (first.host, first.pid) == (socket.gethostname(), os.getpid())
                assert first.version
                assert first.started_at == first.last_seen_at == started

                # Later beats move last_seen_at, by the worker's clock.
                h.clock.advance(timedelta(seconds=30))

                async def moved() -> bool:
                    found = await row()
                    return found is not None and found.last_seen_at == h.clock.now()

                await eventually(moved, timeout=30, what="a heartbeat at the new time")
                later = await row()
                assert later is not None and later.started_at == started
            finally:
                stop.set()
                await running
            assert await row() is None

    async def test_rows_of_workers_long_dead_are_dropped_by_housekeeping(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            await h.worker.heartbeat()
            h.clock.advance(service.FORGET_WORKERS_AFTER)
            await h.worker.housekeeping()
            async with h.sessionmaker() as session:
                assert await session.scalar(select(WorkerHeartbeat.id)) == "test-worker"
            h.clock.advance(timedelta(seconds=1))
            await h.worker.housekeeping()
            async with h.sessionmaker() as session:
                assert await session.scalar(select(WorkerHeartbeat.id)) is None


async def _exists(row: Callable[[], Awaitable[WorkerHeartbeat | None]]) -> bool:
    return await row() is not None


class TestInFlight:
    """What a running worker holds, and what its next claim is to see of each key's share."""

    def test_a_key_is_claimed_for_again_once_half_its_share_is_sent_not_recorded(self) -> None:
        held = InFlight(share=4)
        for _ in range(4):
            held.claimed("busy")
        held.claimed("other")
        assert held.taken() == {"busy": 4, "other": 1}
        held.sent("busy")
        # One of four free: still full for the next claim, which would otherwise fetch one.
        assert held.taken() == {"busy": 4, "other": 1}
        assert not held.freed.is_set()
        held.sent("busy")
        # Half free, none of it recorded yet: the key's next claim can overlap its last sends.
        assert held.freed.is_set()
        assert held.taken() == {"busy": 2, "other": 1}
        assert held.unrecorded == 5

    def test_recording_frees_the_workers_capacity_not_the_keys_share(self) -> None:
        held = InFlight(share=2)
        held.claimed("busy")
        held.claimed("busy")
        held.sent("busy")
        held.freed.clear()
        held.recorded(1)
        assert held.freed.is_set()
        assert held.unrecorded == 1
        assert held.taken() == {"busy": 1}
        held.sent("busy")
        assert held.taken() == {}
