"""The SendGrid transport against a SendGrid look-alike: the request as SendGrid reads it, its
answers classified, and a message naming a sendgrid credential through the real worker."""

import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from email.utils import formatdate

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.models import QueuedMessage
from postroom.delivery.transports.base import PermanentError, TransientError
from postroom.delivery.transports.sendgrid import SendGridTransport
from postroom.messages.models import EmailMessage
from tests.delivery.transports.conftest import CSV, LIMITS, METADATA, PDF
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import Answer, SendGridServer, serving

API_KEY = "SG.test-key.not-a-real-one"


@pytest.fixture
def sendgrid() -> Iterator[SendGridServer]:
    with serving(SendGridServer(API_KEY)) as server:
        yield server


@pytest.fixture
async def transport(sendgrid: SendGridServer) -> AsyncIterator[SendGridTransport]:
    transport = SendGridTransport(API_KEY, sendgrid.url, LIMITS)
    yield transport
    await transport.aclose()


class TestRequest:
    async def test_every_field_reaches_sendgrid_as_its_api_reads_it(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        await transport.send(message)
        [request] = sendgrid.received
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        body = request.json
        assert body["personalizations"] == [
            {
                "to": [{"email": "to@example.com"}, {"email": "second@example.com"}],
                "cc": [{"email": "cc@example.com"}],
                "bcc": [{"email": "hidden@example.com"}],
            }
        ]
        assert body["from"] == {"email": "billing@example.com", "name": "Acme Billing"}
        assert body["subject"] == "Your invoice"
        assert body["content"] == [
            {"type": "text/plain", "value": "Plain body"},
            {"type": "text/html", "value": "<p>HTML body</p>"},
        ]
        assert [
            (a["filename"], a["type"], a["disposition"], base64.b64decode(a["content"]))
            for a in body["attachments"]
        ] == [
            ("invoice.pdf", "application/pdf", "attachment", PDF),
            ("amounts.csv", "text/csv", "attachment", CSV),
        ]
        assert body["custom_args"] == {"postroom_message_id": message.id}
        assert body["headers"] == {"Message-ID": f"<{message.id}@example.com>"}

    async def test_a_plain_message_sends_no_empty_arrays_and_no_name(
        self, sendgrid: SendGridServer, transport: SendGridTransport, plain_message: OutgoingMessage
    ) -> None:
        await transport.send(plain_message)
        [request] = sendgrid.received
        assert request.json["personalizations"] == [{"to": [{"email": "one@example.com"}]}]
        assert request.json["from"] == {"email": "app@example.com"}
        assert "attachments" not in request.json

    async def test_an_address_named_twice_is_sent_once_as_sendgrid_requires(
        self, sendgrid: SendGridServer, transport: SendGridTransport, plain_message: OutgoingMessage
    ) -> None:
        twice = replace(plain_message, cc=("ONE@example.com", "cc@example.com"))
        await transport.send(twice)
        [request] = sendgrid.received
        assert request.json["personalizations"][0]["cc"] == [{"email": "cc@example.com"}]


class TestAnswers:
    async def test_202_is_the_receipt_and_names_the_message_id(
        self, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.code == 202
        assert receipt.text.startswith("X-Message-Id: ")

    async def test_a_wrong_api_key_is_a_permanent_401(
        self, sendgrid: SendGridServer, message: OutgoingMessage
    ) -> None:
        transport = SendGridTransport("SG.wrong", sendgrid.url, LIMITS)
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.code == 401
        assert "authorization grant is invalid" in refused.value.text
        assert sendgrid.received == []

    async def test_400_is_permanent_with_sendgrids_errors_as_the_body(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        sendgrid.script(
            SendGridServer.error(
                400, "The from address does not match a verified Sender Identity.", field="from"
            )
        )
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        assert refused.value.code == 400
        assert '"field": "from"' in refused.value.text

    async def test_429_is_transient_and_waits_for_the_rate_limit_reset(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        # SendGrid says when its window resets (a Unix time), measured here from its own Date.
        now = time.time()
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(now) + 90),
            "Date": formatdate(int(now), usegmt=True),
        }
        sendgrid.script(SendGridServer.error(429, "too many requests", headers=headers))
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert refused.value.code == 429
        assert refused.value.retry_after == 90

    async def test_retry_after_wins_when_given(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        sendgrid.script(
            SendGridServer.error(503, "Service Unavailable", headers={"Retry-After": "45"})
        )
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert (refused.value.code, refused.value.retry_after) == (503, 45)

    async def test_500_is_transient(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        sendgrid.script(SendGridServer.error(500, "An internal server error occurred."))
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert refused.value.code == 500
        assert refused.value.retry_after is None


class TestThroughTheWorker:
    async def test_a_message_naming_a_sendgrid_credential_is_sent_through_sendgrid(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            credential = await h.client.post(
                "/service-credentials/sendgrid", json={"type": "sendgrid", "apiKey": API_KEY}
            )
            assert credential.status_code == 201, credential.text
            created = await make_message(
                h.client, status="outbox", credentialHash=credential.json()["id"]
            )
            assert await h.deliver() == 1
            [request] = sendgrid.received
            assert request.json["personalizations"][0]["to"] == [{"email": "recipient@example.com"}]
            record = await h.message(created["id"])
            assert record["status"] == "sent"
            assert record["responseCode"] == 202
            assert record["responseBody"].startswith("X-Message-Id: ")
            [attempt] = await h.attempts(created["id"])
            assert (attempt["transport"], attempt["outcome"]) == ("sendgrid", "sent")

    async def test_429_is_retried_no_sooner_than_sendgrid_asked_then_sent(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            credential = (
                await h.client.post("/service-credentials/sendgrid", json={"apiKey": API_KEY})
            ).json()
            sendgrid.script(
                SendGridServer.error(429, "too many requests", headers={"Retry-After": "300"})
            )
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            before = h.clock.now()
            await h.deliver()
            waiting = await h.message(created["id"])
            assert (waiting["status"], waiting["responseCode"]) == ("outbox", 429)
            assert "too many requests" in waiting["responseBody"]
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, created["id"])
                due = await session.get(QueuedMessage, created["id"])
                assert row is not None and due is not None
                assert due.due_at - before >= timedelta(seconds=300)
            h.clock.advance(timedelta(seconds=299))
            assert await h.deliver() == 0
            h.clock.advance(timedelta(seconds=2))
            assert await h.deliver() == 1
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("sent", 202)
            attempts = await h.attempts(created["id"])
            assert [(a["outcome"], a["responseCode"]) for a in attempts] == [
                ("transient", 429),
                ("sent", 202),
            ]

    async def test_400_fails_the_message_with_sendgrids_answer(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            credential = (
                await h.client.post("/service-credentials/sendgrid", json={"apiKey": API_KEY})
            ).json()
            sendgrid.script(
                SendGridServer.error(
                    403, "The from address does not match a verified Sender Identity."
                )
            )
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            await h.deliver()
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("failed", 403)
            assert "verified Sender Identity" in record["responseBody"]
            assert await h.retry_all() == 0


class TestCorrelation:
    async def test_custom_args_carry_postrooms_id_first_then_the_metadata(
        self,
        sendgrid: SendGridServer,
        transport: SendGridTransport,
        tagged_message: OutgoingMessage,
    ) -> None:
        await transport.send(tagged_message)
        [request] = sendgrid.received
        expected = {"postroom_message_id": tagged_message.id}
        expected |= {k: v for k, v in METADATA.items() if k != "postroom_message_id"}
        assert request.json["custom_args"] == expected
        assert list(request.json["custom_args"]) == list(expected)
        assert request.json["headers"] == {"Message-ID": f"<{tagged_message.id}@example.com>"}

    async def test_metadata_past_sendgrids_10000_bytes_is_left_out_and_the_id_kept(
        self,
        sendgrid: SendGridServer,
        transport: SendGridTransport,
        oversized_message: OutgoingMessage,
    ) -> None:
        await transport.send(oversized_message)  # the look-alike refuses 10,000 bytes or more
        [request] = sendgrid.received
        custom_args = request.json["custom_args"]
        assert custom_args["postroom_message_id"] == oversized_message.id
        assert 1 < len(custom_args) < len(oversized_message.metadata)

    async def test_the_receipt_carries_the_x_message_id(
        self, sendgrid: SendGridServer, transport: SendGridTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.provider_message_id == sendgrid.issued_ids[0]

    @pytest.mark.parametrize("odd", ["x" * 1000, "café-id", "two words"])
    async def test_an_odd_x_message_id_is_not_kept(
        self,
        sendgrid: SendGridServer,
        transport: SendGridTransport,
        message: OutgoingMessage,
        odd: str,
    ) -> None:
        sendgrid.script(Answer(202, b"", {"X-Message-Id": odd}))
        receipt = await transport.send(message)
        assert receipt.code == 202
        assert receipt.provider_message_id is None

    async def test_the_attempt_records_sendgrids_id(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            credential = (
                await h.client.post("/service-credentials/sendgrid", json={"apiKey": API_KEY})
            ).json()
            created = await make_message(
                h.client,
                status="outbox",
                credentialHash=credential["id"],
                metadata={"order": "42"},
            )
            assert await h.deliver() == 1
            [request] = sendgrid.received
            assert request.json["custom_args"] == {
                "postroom_message_id": created["id"],
                "order": "42",
            }
            [attempt] = await h.attempts(created["id"])
            assert attempt["outcome"] == "sent"
            assert attempt["providerMessageId"] == sendgrid.issued_ids[0]
