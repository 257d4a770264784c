"""The Postmark transport against a Postmark look-alike: the JSON Postmark reads, its answers
(ErrorCode documents) classified, and a message naming a postmark credential through the worker."""

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.models import QueuedMessage
from postroom.delivery.transports.base import PermanentError, TransientError
from postroom.delivery.transports.postmark import PostmarkTransport
from postroom.messages.models import EmailMessage
from tests.delivery.transports.conftest import CSV, LIMITS, PDF
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import Answer, PostmarkServer, serving

TOKEN = "dd0508z9-2291-6794-3376-z0a70g12eqm9"


@pytest.fixture
def postmark() -> Iterator[PostmarkServer]:
    with serving(PostmarkServer(TOKEN)) as server:
        yield server


@pytest.fixture
async def transport(postmark: PostmarkServer) -> AsyncIterator[PostmarkTransport]:
    transport = PostmarkTransport(TOKEN, postmark.url, LIMITS)
    yield transport
    await transport.aclose()


class TestRequest:
    async def test_every_field_reaches_postmark_as_its_api_reads_it(
        self, postmark: PostmarkServer, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        await transport.send(message)
        [request] = postmark.received
        assert request.headers["x-postmark-server-token"] == TOKEN
        assert request.headers["accept"] == "application/json"
        body = request.json
        assert body["From"] == "Acme Billing <billing@example.com>"
        assert body["To"] == "to@example.com, second@example.com"
        assert body["Cc"] == "cc@example.com"
        assert body["Bcc"] == "hidden@example.com"
        assert body["Subject"] == "Your invoice"
        assert body["TextBody"] == "Plain body"
        assert body["HtmlBody"] == "<p>HTML body</p>"
        assert body["MessageStream"] == "outbound"
        assert body["Metadata"] == {"postroom_message_id": message.id}
        assert body["Headers"] == [{"Name": "Message-ID", "Value": f"<{message.id}@example.com>"}]
        assert [
            (a["Name"], a["ContentType"], base64.b64decode(a["Content"]))
            for a in body["Attachments"]
        ] == [("invoice.pdf", "application/pdf", PDF), ("amounts.csv", "text/csv", CSV)]

    async def test_a_plain_message_has_no_cc_bcc_or_attachments(
        self, postmark: PostmarkServer, transport: PostmarkTransport, plain_message: OutgoingMessage
    ) -> None:
        await transport.send(plain_message)
        body = postmark.received[0].json
        assert body["From"] == "app@example.com"
        assert not {"Cc", "Bcc", "Attachments"} & set(body)


class TestAnswers:
    async def test_200_is_the_receipt_with_postmarks_body(
        self, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert '"ErrorCode": 0' in receipt.text and '"MessageID"' in receipt.text

    async def test_a_wrong_token_is_a_permanent_401(
        self, postmark: PostmarkServer, message: OutgoingMessage
    ) -> None:
        transport = PostmarkTransport("wrong-token", postmark.url, LIMITS)
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.code == 401
        assert '"ErrorCode": 10' in refused.value.text

    async def test_422_inactive_recipient_is_permanent(
        self, postmark: PostmarkServer, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        postmark.script(
            PostmarkServer.error(
                422, 406, "You tried to send to recipient(s) that have been marked as inactive."
            )
        )
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        assert refused.value.code == 422
        assert '"ErrorCode": 406' in refused.value.text

    async def test_more_than_50_recipients_is_refused_by_postmark(
        self, postmark: PostmarkServer, transport: PostmarkTransport, plain_message: OutgoingMessage
    ) -> None:
        many = replace(plain_message, to=tuple(f"user{n}@example.com" for n in range(51)))
        with pytest.raises(PermanentError) as refused:
            await transport.send(many)
        assert refused.value.code == 422
        assert "50 recipients" in refused.value.text

    async def test_429_is_transient_with_retry_after(
        self, postmark: PostmarkServer, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        postmark.script(
            PostmarkServer.error(429, 429, "Rate limit exceeded", headers={"Retry-After": "30"})
        )
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert (refused.value.code, refused.value.retry_after) == (429, 30)

    async def test_503_maintenance_is_transient(
        self, postmark: PostmarkServer, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        postmark.script(PostmarkServer.error(503, 100, "Maintenance"))
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert refused.value.code == 503


class TestThroughTheWorker:
    async def test_a_message_naming_a_postmark_credential_is_sent_through_postmark(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            credential = await h.client.post(
                "/service-credentials/postmark", json={"serverApiToken": TOKEN}
            )
            assert credential.status_code == 201, credential.text
            created = await make_message(
                h.client, status="outbox", credentialHash=credential.json()["id"]
            )
            await h.deliver()
            [request] = postmark.received
            assert request.json["To"] == "recipient@example.com"
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("sent", 200)
            assert '"Message": "OK"' in record["responseBody"]

    async def test_429_then_500_then_sent_each_wait_honoured(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}, max_attempts=4) as h:
            credential = (
                await h.client.post("/service-credentials/postmark", json={"serverApiToken": TOKEN})
            ).json()
            postmark.script(
                PostmarkServer.error(
                    429, 429, "Rate limit exceeded", headers={"Retry-After": "200"}
                ),
                PostmarkServer.error(500, 0, "Internal server error"),
            )
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            before = h.clock.now()
            await h.deliver()
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, created["id"])
                due = await session.get(QueuedMessage, created["id"])
                assert row is not None and due is not None
                assert due.due_at - before >= timedelta(seconds=200)
            await h.retry_all()
            await h.retry_all()
            attempts = await h.attempts(created["id"])
            assert [(a["outcome"], a["responseCode"]) for a in attempts] == [
                ("transient", 429),
                ("transient", 500),
                ("sent", 200),
            ]
            assert (await h.message(created["id"]))["status"] == "sent"

    async def test_422_fails_the_message(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            credential = (
                await h.client.post("/service-credentials/postmark", json={"serverApiToken": TOKEN})
            ).json()
            postmark.script(
                PostmarkServer.error(
                    422,
                    400,
                    "The 'From' address you supplied is not a Sender Signature on your account.",
                )
            )
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            await h.deliver()
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("failed", 422)
            assert "Sender Signature" in record["responseBody"]


def _accepted(message_id: object) -> Answer:
    return Answer(200, {"ErrorCode": 0, "Message": "OK", "MessageID": message_id})


class TestCorrelation:
    async def test_metadata_carries_postrooms_id_and_the_entries_within_postmarks_limits(
        self,
        postmark: PostmarkServer,
        transport: PostmarkTransport,
        tagged_message: OutgoingMessage,
    ) -> None:
        await transport.send(tagged_message)
        [request] = postmark.received
        # The name over 20 characters, the value over 80 and the spoofed id are left out.
        assert request.json["Metadata"] == {
            "postroom_message_id": tagged_message.id,
            "order": "42",
            "customer": "jane@example.com",
        }
        assert request.json["Headers"] == [
            {"Name": "Message-ID", "Value": f"<{tagged_message.id}@example.com>"}
        ]

    async def test_at_most_10_fields_go_postrooms_id_first(
        self, postmark: PostmarkServer, transport: PostmarkTransport, plain_message: OutgoingMessage
    ) -> None:
        many = replace(plain_message, metadata={f"field{n:02d}": str(n) for n in range(30)})
        await transport.send(many)  # the look-alike refuses an 11th field
        [request] = postmark.received
        metadata = request.json["Metadata"]
        assert list(metadata) == ["postroom_message_id"] + [f"field{n:02d}" for n in range(9)]

    async def test_names_differing_only_in_case_go_once(
        self, postmark: PostmarkServer, transport: PostmarkTransport, plain_message: OutgoingMessage
    ) -> None:
        await transport.send(replace(plain_message, metadata={"Order": "1", "order": "2"}))
        [request] = postmark.received
        assert request.json["Metadata"] == {"postroom_message_id": plain_message.id, "Order": "1"}

    async def test_oversized_metadata_leaves_only_postrooms_id(
        self,
        postmark: PostmarkServer,
        transport: PostmarkTransport,
        oversized_message: OutgoingMessage,
    ) -> None:
        await transport.send(oversized_message)
        [request] = postmark.received
        assert request.json["Metadata"] == {"postroom_message_id": oversized_message.id}

    async def test_the_receipt_carries_postmarks_message_id(
        self, postmark: PostmarkServer, transport: PostmarkTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.provider_message_id == postmark.issued_ids[0]

    @pytest.mark.parametrize(
        "odd",
        [
            "a\x00b",  # NUL, as JSON "\u0000"
            "x" * 256,
            "x" * 20_000,  # past the 16 KiB read of an answer: its JSON is cut
            12345,
            None,
            ["nested"],
        ],
    )
    async def test_an_odd_message_id_is_not_kept(
        self,
        postmark: PostmarkServer,
        transport: PostmarkTransport,
        message: OutgoingMessage,
        odd: object,
    ) -> None:
        postmark.script(_accepted(odd))
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert receipt.provider_message_id is None

    async def test_the_attempt_records_postmarks_id_and_a_hostile_one_is_not_stored(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            credential = (
                await h.client.post("/service-credentials/postmark", json={"serverApiToken": TOKEN})
            ).json()
            first = await make_message(
                h.client, status="outbox", credentialHash=credential["id"], metadata={"a": "b"}
            )
            assert await h.deliver() == 1
            [request] = postmark.received
            assert request.json["Metadata"] == {"postroom_message_id": first["id"], "a": "b"}
            [attempt] = await h.attempts(first["id"])
            assert attempt["providerMessageId"] == postmark.issued_ids[0]

            postmark.script(_accepted("\x00" + "z" * 5000))
            second = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            assert await h.deliver() == 1
            assert (await h.message(second["id"]))["status"] == "sent"
            [attempt] = await h.attempts(second["id"])
            assert (attempt["outcome"], attempt["providerMessageId"]) == ("sent", None)
