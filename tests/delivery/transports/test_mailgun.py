"""The Mailgun transport against Mailgun look-alikes (a US and an EU one): the form as Mailgun
reads it, the region's base URL, its answers classified, and the real worker."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.models import QueuedMessage
from postroom.delivery.transports.base import PermanentError, TransientError
from postroom.delivery.transports.mailgun import MailgunTransport
from postroom.messages.models import EmailMessage
from tests.delivery.transports.conftest import CSV, LIMITS, METADATA, PDF
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import Answer, MailgunServer, Upload, mailgun_variables, serving

API_KEY = "key-0123456789abcdef-test"
DOMAIN = "mg.example.com"


@pytest.fixture
def mailgun() -> Iterator[MailgunServer]:
    with serving(MailgunServer(API_KEY, DOMAIN)) as server:
        yield server


@pytest.fixture
def mailgun_eu() -> Iterator[MailgunServer]:
    with serving(MailgunServer(API_KEY, DOMAIN)) as server:
        yield server


@pytest.fixture
async def transport(mailgun: MailgunServer) -> AsyncIterator[MailgunTransport]:
    transport = MailgunTransport(API_KEY, DOMAIN, mailgun.url, LIMITS)
    yield transport
    await transport.aclose()


def _credential(**overrides: object) -> dict[str, object]:
    return {
        "type": "mailgun",
        "emailFrom": "billing@example.com",
        "apiKey": API_KEY,
        "domain": DOMAIN,
        **overrides,
    }


class TestRequest:
    async def test_every_field_reaches_mailgun_as_a_multipart_form(
        self, mailgun: MailgunServer, transport: MailgunTransport, message: OutgoingMessage
    ) -> None:
        await transport.send(message)
        [request] = mailgun.received
        assert request.path == f"/v3/{DOMAIN}/messages"
        assert request.headers["content-type"].startswith("multipart/form-data")
        assert request.values("from") == ["Acme Billing <billing@example.com>"]
        assert request.values("to") == ["to@example.com", "second@example.com"]
        assert request.values("cc") == ["cc@example.com"]
        assert request.values("bcc") == ["hidden@example.com"]
        assert request.values("subject") == ["Your invoice"]
        assert request.values("text") == ["Plain body"]
        assert request.values("html") == ["<p>HTML body</p>"]
        assert request.values("v:postroom_message_id") == [f'"{message.id}"']
        assert request.values("h:Message-Id") == [f"<{message.id}@example.com>"]
        assert request.files == [
            Upload("attachment", "invoice.pdf", "application/pdf", PDF),
            Upload("attachment", "amounts.csv", "text/csv", CSV),
        ]

    async def test_a_plain_message_is_an_urlencoded_form_without_cc_or_bcc(
        self, mailgun: MailgunServer, transport: MailgunTransport, plain_message: OutgoingMessage
    ) -> None:
        await transport.send(plain_message)
        [request] = mailgun.received
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert request.values("from") == ["app@example.com"]
        assert request.values("cc") == request.values("bcc") == []

    async def test_a_name_with_a_comma_is_quoted(
        self, mailgun: MailgunServer, transport: MailgunTransport, plain_message: OutgoingMessage
    ) -> None:
        await transport.send(replace(plain_message, sender_name="Acme, Inc."))
        assert mailgun.received[0].values("from") == ['"Acme, Inc." <app@example.com>']


class TestAnswers:
    async def test_200_is_the_receipt_with_mailguns_body(
        self, transport: MailgunTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert '"message": "Queued. Thank you."' in receipt.text

    async def test_a_wrong_api_key_is_a_permanent_401(
        self, mailgun: MailgunServer, message: OutgoingMessage
    ) -> None:
        transport = MailgunTransport("key-wrong", DOMAIN, mailgun.url, LIMITS)
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert (refused.value.code, refused.value.text) == (401, "Forbidden")

    async def test_an_unknown_domain_is_a_permanent_404(
        self, mailgun: MailgunServer, message: OutgoingMessage
    ) -> None:
        transport = MailgunTransport(API_KEY, "other.example.com", mailgun.url, LIMITS)
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.code == 404
        assert "Domain not found: other.example.com" in refused.value.text

    async def test_429_is_transient_with_retry_after(
        self, mailgun: MailgunServer, transport: MailgunTransport, message: OutgoingMessage
    ) -> None:
        mailgun.script(
            MailgunServer.error(429, "Too many requests", headers={"Retry-After": "120"})
        )
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert (refused.value.code, refused.value.retry_after) == (429, 120)

    async def test_502_is_transient(
        self, mailgun: MailgunServer, transport: MailgunTransport, message: OutgoingMessage
    ) -> None:
        mailgun.script(MailgunServer.error(502, "Bad Gateway"))
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert refused.value.code == 502


class TestThroughTheWorker:
    async def test_a_us_credential_sends_through_the_us_base_url(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer, mailgun_eu: MailgunServer
    ) -> None:
        urls = {"mailgun_url": mailgun.url, "mailgun_eu_url": mailgun_eu.url}
        async with harness_factory(providers=urls) as h:
            credential = await h.client.post("/service-credentials/mailgun", json=_credential())
            assert credential.status_code == 201, credential.text
            created = await make_message(
                h.client, status="outbox", credentialHash=credential.json()["id"]
            )
            await h.deliver()
            assert len(mailgun.received) == 1 and mailgun_eu.received == []
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("sent", 200)
            assert "Queued. Thank you." in record["responseBody"]

    async def test_an_eu_credential_sends_through_the_eu_base_url(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer, mailgun_eu: MailgunServer
    ) -> None:
        urls = {"mailgun_url": mailgun.url, "mailgun_eu_url": mailgun_eu.url}
        async with harness_factory(providers=urls) as h:
            credential = (
                await h.client.post("/service-credentials/mailgun", json=_credential(region="eu"))
            ).json()
            assert credential["region"] == "eu"
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            await h.deliver()
            assert mailgun.received == [] and len(mailgun_eu.received) == 1
            assert (await h.message(created["id"]))["status"] == "sent"

    async def test_503_with_retry_after_is_retried_after_it_then_sent(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            credential = (
                await h.client.post("/service-credentials/mailgun", json=_credential())
            ).json()
            mailgun.script(
                MailgunServer.error(503, "Service Unavailable", headers={"Retry-After": "240"})
            )
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            before = h.clock.now()
            await h.deliver()
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, created["id"])
                due = await session.get(QueuedMessage, created["id"])
                assert row is not None and due is not None
                assert due.due_at - before >= timedelta(seconds=240)
            assert (row.status, row.response_code) == ("outbox", 503)
            await h.retry_all()
            attempts = await h.attempts(created["id"])
            assert [(a["outcome"], a["responseCode"]) for a in attempts] == [
                ("transient", 503),
                ("sent", 200),
            ]

    async def test_400_fails_the_message(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            credential = (
                await h.client.post("/service-credentials/mailgun", json=_credential())
            ).json()
            mailgun.script(MailgunServer.error(400, "to parameter is not a valid address."))
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            await h.deliver()
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("failed", 400)
            assert record["responseBody"] == '{"message": "to parameter is not a valid address."}'


class TestCorrelation:
    async def test_v_fields_carry_postrooms_id_and_the_metadata_as_the_same_strings(
        self, mailgun: MailgunServer, transport: MailgunTransport, tagged_message: OutgoingMessage
    ) -> None:
        await transport.send(tagged_message)
        [request] = mailgun.received
        expected = {"postroom_message_id": tagged_message.id}
        expected |= {k: v for k, v in METADATA.items() if k != "postroom_message_id"}
        # As Mailgun returns them in user-variables: "42" stays a string.
        assert mailgun_variables(request) == expected
        assert request.values("h:Message-Id") == [f"<{tagged_message.id}@example.com>"]

    async def test_variables_past_mailguns_16_kb_of_send_options_are_left_out(
        self,
        mailgun: MailgunServer,
        transport: MailgunTransport,
        oversized_message: OutgoingMessage,
    ) -> None:
        await transport.send(oversized_message)  # the look-alike refuses more than 16 kB
        [request] = mailgun.received
        variables = mailgun_variables(request)
        assert variables["postroom_message_id"] == oversized_message.id
        assert 1 < len(variables) < len(oversized_message.metadata)

    async def test_the_receipt_carries_mailguns_id_without_brackets(
        self, mailgun: MailgunServer, transport: MailgunTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        [issued] = mailgun.issued_ids
        assert f'"id": "<{issued}>"' in receipt.text
        assert receipt.provider_message_id == issued
        assert not issued.startswith("<")

    @pytest.mark.parametrize(
        "odd",
        ["<" + "x" * 300 + "@mg.example.com>", "<a b@mg.example.com>", r"<\u0000>", "<>"],
    )
    async def test_an_odd_id_is_not_kept(
        self,
        mailgun: MailgunServer,
        transport: MailgunTransport,
        message: OutgoingMessage,
        odd: str,
    ) -> None:
        document = '{"id": "%s", "message": "Queued. Thank you."}' % odd  # noqa: UP031
        mailgun.script(Answer(200, document.encode(), {"Content-Type": "application/json"}))
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert receipt.provider_message_id is None

    async def test_the_attempt_records_mailguns_id(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            credential = (
                await h.client.post("/service-credentials/mailgun", json=_credential())
            ).json()
            created = await make_message(
                h.client, status="outbox", credentialHash=credential["id"], metadata={"n": "7"}
            )
            assert await h.deliver() == 1
            [request] = mailgun.received
            assert mailgun_variables(request) == {"postroom_message_id": created["id"], "n": "7"}
            [attempt] = await h.attempts(created["id"])
            assert (attempt["outcome"], attempt["providerMessageId"]) == (
                "sent",
                mailgun.issued_ids[0],
            )
