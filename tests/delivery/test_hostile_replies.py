"""Recording never fails on what a server said: a reply with a NUL byte, invalid UTF-8 or a 1 MiB
line from one tenant's server is recorded as storable text (core/text.py), and the other
tenants' messages of the same batch are recorded sent, once; a row the database refuses all the
same is left for its lease to run out, the others recorded (delivery/service.py)."""

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from postroom.core.text import REPLACEMENT
from postroom.delivery import service
from postroom.delivery.models import DeliveryAttempt, Outcome
from postroom.delivery.transports.base import Receipt
from postroom.messages.models import EmailMessage, MessageStatus
from tests.factories import make_message, make_org, queue_messages, queued
from tests.harness import Harness, HarnessFactory
from tests.servers.esp import Answer, MailgunServer, serving
from tests.servers.smtp import MIB_LINE, HostileSmtp, SmtpServer, hostile_server, smtp_server

R = REPLACEMENT


@dataclass(frozen=True)
class Hostile:
    greeting: bytes | None = None
    data_reply: bytes | None = None
    status: MessageStatus = MessageStatus.SENT
    outcome: Outcome = Outcome.SENT
    recorded: str = ""
    """The attempt's response body; "{port}" stands for the server's port."""
    copies: int = 1
    """Messages the hostile server took in."""


VARIANTS = {
    "nul-in-greeting-and-final-reply": Hostile(
        greeting=b"220 hostile.example.com\x00 ESMTP\r\n",
        data_reply=b"250 2.0.0 OK\x00queued as 1A2B\r\n",
        recorded=f"2.0.0 OK{R}queued as 1A2B",
    ),
    "invalid-utf8-in-greeting-and-final-reply": Hostile(
        greeting=b"220 hostile.example.com \xff\xfe ESMTP\r\n",
        data_reply=b"250 2.0.0 OK \xc3\x28 queued \xed\xa0\x80\r\n",
        recorded=f"2.0.0 OK {R}( queued {R}{R}{R}",
    ),
    "controls-in-a-refusal-after-data": Hostile(
        data_reply=b"554 5.7.1 no \x00\x1b[31m\x7f\xc2\x9b \xff\r\n",
        status=MessageStatus.FAILED,
        outcome=Outcome.PERMANENT,
        recorded=f"5.7.1 no {R}{R}[31m{R}{R} {R}",
    ),
    "nul-in-a-temporary-refusal-after-data": Hostile(
        data_reply=b"451 4.3.0 try later\x00\xff\r\n",
        status=MessageStatus.OUTBOX,
        outcome=Outcome.TRANSIENT,
        recorded=f"4.3.0 try later{R}{R}",
    ),
    "1-mib-greeting": Hostile(
        greeting=b"220 " + MIB_LINE + b"\r\n",
        status=MessageStatus.OUTBOX,
        outcome=Outcome.TRANSIENT,
        recorded="not an SMTP server at 127.0.0.1:{port}",
        copies=0,
    ),
    "1-mib-final-reply": Hostile(
        data_reply=b"250 " + MIB_LINE + b"\r\n",
        status=MessageStatus.OUTBOX,
        outcome=Outcome.UNKNOWN,
        recorded="a reply to the end of the message that is not SMTP; it may have been accepted",
    ),
}


async def _attempts(h: Harness, message_id: str) -> list[DeliveryAttempt]:
    async with h.sessionmaker() as session:
        found = await session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
        )
        return list(found.all())


async def _message(h: Harness, message_id: str) -> EmailMessage:
    async with h.sessionmaker() as session:
        return (
            await session.scalars(select(EmailMessage).where(EmailMessage.id == message_id))
        ).one()


async def _neighbours(h: Harness, servers: list[SmtpServer]) -> list[str]:
    """One message queued for each of two more organizations, each through its own server."""
    queued = []
    for n, server in enumerate(servers):
        organization = await make_org(h.sessionmaker, f"neighbour {n}")
        credential = await h.smtp_credential(organization.organization_id, server.port)
        queued += await queue_messages(
            h.sessionmaker,
            organization.organization_id,
            1,
            h.clock.now(),
            credential_hash=credential,
        )
    return queued


async def _assert_sent_once(h: Harness, message_ids: list[str], servers: list[SmtpServer]) -> None:
    for message_id, server in zip(message_ids, servers, strict=True):
        message = await _message(h, message_id)
        assert message.status == MessageStatus.SENT
        assert await queued(h.sessionmaker, message_id) is None
        [attempt] = await _attempts(h, message_id)
        assert attempt.outcome == Outcome.SENT
        assert len(server.received) == 1


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
async def test_a_hostile_smtp_reply_is_recorded_and_the_batch_with_it(
    harness_factory: HarnessFactory, variant: Hostile
) -> None:
    options: dict[str, Any] = {
        key: value
        for key, value in (("greeting", variant.greeting), ("data_reply", variant.data_reply))
        if value is not None
    }
    with smtp_server() as one, smtp_server() as two:
        async with hostile_server(**options) as hostile, harness_factory() as h:
            organization = await make_org(h.sessionmaker, "hostile")
            credential = await h.smtp_credential(organization.organization_id, hostile.port)
            [hostile_message] = await queue_messages(
                h.sessionmaker,
                organization.organization_id,
                1,
                h.clock.now(),
                credential_hash=credential,
            )
            neighbours = await _neighbours(h, [one, two])

            assert await h.worker.run_once() == 3

            await _assert_sent_once(h, neighbours, [one, two])
            await _assert_recorded(h, hostile_message, hostile, variant)


async def _assert_recorded(
    h: Harness, message_id: str, server: HostileSmtp, variant: Hostile
) -> None:
    recorded = variant.recorded.replace("{port}", str(server.port))
    message = await _message(h, message_id)
    assert message.status == variant.status
    if variant.status != MessageStatus.OUTBOX:
        assert await queued(h.sessionmaker, message_id) is None
    else:
        row = await queued(h.sessionmaker, message_id)
        assert row is not None and row.lease_token is None
    [attempt] = await _attempts(h, message_id)
    assert attempt.outcome == variant.outcome
    assert attempt.response_body == recorded
    assert message.response_body == recorded
    assert len(server.messages) == variant.copies


async def test_a_provider_body_with_nul_and_invalid_utf8_is_recorded_and_the_batch_with_it(
    harness_factory: HarnessFactory,
) -> None:
    body = b'{"id": "<1A2B@mg.example.com>", "message": "Queued\x00 \xff\xfe \x1b thank you"}'
    async with AsyncExitStack() as stack:
        mailgun = stack.enter_context(serving(MailgunServer("key-mailgun", "mg.example.com")))
        one, two = stack.enter_context(smtp_server()), stack.enter_context(smtp_server())
        h = await stack.enter_async_context(harness_factory(providers={"mailgun_url": mailgun.url}))
        mailgun.script(Answer(200, body))
        created = await h.client.post(
            "/service-credentials/mailgun",
            json={
                "type": "mailgun",
                "emailFrom": "billing@example.com",
                "apiKey": "key-mailgun",
                "domain": "mg.example.com",
            },
        )
        assert created.status_code == 201, created.text
        message = await make_message(h.client, status="outbox", credentialHash=created.json()["id"])
        neighbours = await _neighbours(h, [one, two])

        assert await h.worker.run_once() == 3

        await _assert_sent_once(h, neighbours, [one, two])
        recorded = f'{{"id": "<1A2B@mg.example.com>", "message": "Queued{R} {R}{R} {R} thank you"}}'
        shown = await h.message(message["id"])
        assert shown["status"] == "sent"
        assert shown["responseBody"] == recorded
        [attempt] = await h.attempts(message["id"])
        assert attempt["responseBody"] == recorded
        assert len(mailgun.received) == 1


async def test_a_row_the_database_refuses_is_left_for_its_lease_and_the_others_are_recorded(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness_factory() as h:  # the server-wide transport: .eml files
        ids = []
        for name in ("first", "refused", "last"):
            organization = await make_org(h.sessionmaker, name)
            ids += await queue_messages(
                h.sessionmaker, organization.organization_id, 1, h.clock.now()
            )
        async with h.sessionmaker() as session, session.begin():
            claim = await service.claim(
                session,
                now=h.clock.now(),
                worker="test-worker",
                token="lease_test",
                settings=h.settings.delivery,
                box=h.worker.box,
                default_transport="eml",
                blobs=h.worker.blobs,
            )
        jobs = {job.message.id: job for job in claim.jobs}
        receipt = Receipt(250, "2.0.0 OK secret-free reply")
        results = [service.Result(jobs[i], receipt, h.clock.now(), 12) for i in ids]
        # A stand-in for any row the database refuses: a duration no integer column holds.
        results[1] = replace(results[1], duration_ms=1 << 70)

        caplog.set_level(logging.WARNING, logger="postroom.delivery")
        statuses = await h.worker.record_outcomes(results)

        assert statuses == [MessageStatus.SENT, None, MessageStatus.SENT]
        for message_id in (ids[0], ids[2]):
            assert (await _message(h, message_id)).status == MessageStatus.SENT
            [attempt] = await _attempts(h, message_id)
            assert attempt.outcome == Outcome.SENT
        # Untouched: still leased, its attempt still open, as if its worker had stopped.
        refused = await _message(h, ids[1])
        assert refused.status == MessageStatus.OUTBOX
        row = await queued(h.sessionmaker, ids[1])
        assert row is not None and row.lease_token == "lease_test"
        [open_attempt] = await _attempts(h, ids[1])
        assert open_attempt.outcome is None
        [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert logged.getMessage() == "delivery outcome not recorded; its lease will run out"
        assert logged.__dict__["message_id"] == ids[1]
        assert "secret-free" not in str(logged.__dict__)

        # Its lease runs out: it is claimed again, the cut attempt `unknown`, and sent.
        assert await h.deliver() == 0
        h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
        assert await h.deliver() == 1
        assert (await _message(h, ids[1])).status == MessageStatus.SENT
        outcomes = [a.outcome for a in sorted(await _attempts(h, ids[1]), key=lambda a: a.number)]
        assert outcomes == [Outcome.UNKNOWN, Outcome.SENT]
