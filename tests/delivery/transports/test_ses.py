"""The SES v2 transport against an SES look-alike that verifies each request's AWS Signature
Version 4 with botocore: the raw MIME SES reads, its answers classified, and the real worker."""

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.models import QueuedMessage
from postroom.delivery.transports.base import PermanentError, TransientError
from postroom.delivery.transports.ses import SesTransport
from postroom.messages.models import EmailMessage
from tests.delivery.transports.conftest import CSV, LIMITS, PDF
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import Answer, SesServer, serving

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"


@pytest.fixture
def ses() -> Iterator[SesServer]:
    with serving(SesServer(ACCESS_KEY, SECRET_KEY, REGION)) as server:
        yield server


def _transport(ses: SesServer, **overrides: str) -> SesTransport:
    options = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "region": REGION, **overrides}
    return SesTransport(endpoint=ses.url, limits=LIMITS, **options)


@pytest.fixture
async def transport(ses: SesServer) -> AsyncIterator[SesTransport]:
    transport = _transport(ses)
    yield transport
    await transport.aclose()


def _credential(**overrides: object) -> dict[str, object]:
    return {
        "type": "aws-ses",
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "region": REGION,
        **overrides,
    }


class TestRequest:
    async def test_a_signed_raw_message_with_every_field_reaches_ses(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        await transport.send(message)
        [request] = ses.received
        assert request.headers["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
        )
        body = request.json
        assert body["FromEmailAddress"] == "billing@example.com"
        assert body["Destination"] == {
            "ToAddresses": ["to@example.com", "second@example.com"],
            "CcAddresses": ["cc@example.com"],
            "BccAddresses": ["hidden@example.com"],
        }
        assert body["EmailTags"] == [{"Name": "postroom_message_id", "Value": message.id}]
        assert "ConfigurationSetName" not in body
        mime = request.mime
        assert mime is not None
        assert mime["From"] == "Acme Billing <billing@example.com>"
        assert mime["To"] == "to@example.com, second@example.com"
        assert mime["Cc"] == "cc@example.com"
        assert mime["Bcc"] is None
        assert b"hidden@example.com" not in request.json["Content"]["Raw"]["Data"].encode()
        assert mime["Subject"] == "Your invoice"
        assert mime["Message-ID"] == f"<{message.id}@example.com>"
        text, html = mime.get_body(("plain",)), mime.get_body(("html",))
        assert text is not None and text.get_content().strip() == "Plain body"
        assert html is not None and html.get_content().strip() == "<p>HTML body</p>"
        assert [
            (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            for part in mime.iter_attachments()
        ] == [("invoice.pdf", "application/pdf", PDF), ("amounts.csv", "text/csv", CSV)]

    async def test_the_configuration_set_is_named_when_the_credential_has_one(
        self, ses: SesServer, plain_message: OutgoingMessage
    ) -> None:
        transport = SesTransport(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint=ses.url,
            limits=LIMITS,
            configuration_set="Transactional",
        )
        await transport.send(plain_message)
        await transport.aclose()
        assert ses.received[0].json["ConfigurationSetName"] == "Transactional"

    async def test_the_region_goes_into_the_endpoint_template(
        self, ses: SesServer, plain_message: OutgoingMessage
    ) -> None:
        # The default endpoint is https://email.{region}.amazonaws.com; a template without the
        # placeholder (a test server, a proxy) is used as it is.
        transport = SesTransport(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint="https://email.{region}.amazonaws.com",
            limits=LIMITS,
        )
        assert transport.url == f"https://email.{REGION}.amazonaws.com/v2/email/outbound-emails"
        await transport.aclose()


class TestSignature:
    async def test_a_wrong_secret_key_fails_the_signature_check_permanently(
        self, ses: SesServer, message: OutgoingMessage
    ) -> None:
        transport = _transport(ses, secret_key="not-the-secret")
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.code == 403
        assert refused.value.text.startswith("SignatureDoesNotMatch: ")
        assert ses.received == [] and ses.refusals == 1

    async def test_an_unknown_access_key_is_refused(
        self, ses: SesServer, message: OutgoingMessage
    ) -> None:
        transport = _transport(ses, access_key="AKIAUNKNOWNKEY000000")
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.text.startswith("UnrecognizedClientException: ")

    async def test_a_key_scoped_to_another_region_is_refused(
        self, ses: SesServer, message: OutgoingMessage
    ) -> None:
        transport = _transport(ses, region="us-east-1")
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        await transport.aclose()
        assert refused.value.code == 403


class TestAnswers:
    async def test_200_is_the_receipt_with_the_message_id(
        self, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert receipt.text.startswith('{"MessageId": "0100018c')

    async def test_message_rejected_is_permanent_and_names_the_error_type(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        ses.script(SesServer.error(400, "MessageRejected", "Email address is not verified."))
        with pytest.raises(PermanentError) as refused:
            await transport.send(message)
        assert refused.value.code == 400
        assert (
            refused.value.text == 'MessageRejected: {"message": "Email address is not verified."}'
        )

    async def test_429_too_many_requests_is_transient_with_retry_after(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        ses.script(
            SesServer.error(
                429, "TooManyRequestsException", "Too Many Requests", headers={"Retry-After": "15"}
            )
        )
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert (refused.value.code, refused.value.retry_after) == (429, 15)

    async def test_500_internal_failure_is_transient(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        ses.script(SesServer.error(500, "InternalFailure", "An internal error occurred."))
        with pytest.raises(TransientError) as refused:
            await transport.send(message)
        assert refused.value.code == 500


class TestThroughTheWorker:
    async def test_a_message_naming_an_aws_ses_credential_is_sent_through_ses(
        self, harness_factory: HarnessFactory, ses: SesServer
    ) -> None:
        async with harness_factory(providers={"ses_endpoint": ses.url}) as h:
            credential = await h.client.post("/service-credentials/aws-ses", json=_credential())
            assert credential.status_code == 201, credential.text
            created = await make_message(
                h.client, status="outbox", credentialHash=credential.json()["id"]
            )
            await h.deliver()
            [request] = ses.received
            assert request.json["Destination"]["ToAddresses"] == ["recipient@example.com"]
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("sent", 200)
            assert "MessageId" in record["responseBody"]
            [attempt] = await h.attempts(created["id"])
            assert attempt["transport"] == "aws-ses"

    async def test_throttled_is_retried_after_retry_after_then_sent(
        self, harness_factory: HarnessFactory, ses: SesServer
    ) -> None:
        async with harness_factory(providers={"ses_endpoint": ses.url}) as h:
            credential = (
                await h.client.post("/service-credentials/aws-ses", json=_credential())
            ).json()
            ses.script(
                SesServer.error(
                    429, "TooManyRequestsException", "Maximum sending rate exceeded.",
                    headers={"Retry-After": "180"},
                )
            )  # fmt: skip
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            before = h.clock.now()
            await h.deliver()
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, created["id"])
                due = await session.get(QueuedMessage, created["id"])
                assert row is not None and due is not None
                assert due.due_at - before >= timedelta(seconds=180)
                assert row.response_body is not None
                assert row.response_body.startswith("TooManyRequestsException: ")
            await h.retry_all()
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("sent", 200)

    async def test_message_rejected_fails_the_message(
        self, harness_factory: HarnessFactory, ses: SesServer
    ) -> None:
        async with harness_factory(providers={"ses_endpoint": ses.url}) as h:
            credential = (
                await h.client.post("/service-credentials/aws-ses", json=_credential())
            ).json()
            ses.script(SesServer.error(400, "MessageRejected", "Email address is not verified."))
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            await h.deliver()
            record = await h.message(created["id"])
            assert (record["status"], record["responseCode"]) == ("failed", 400)
            assert record["responseBody"].startswith("MessageRejected: ")


class TestCorrelation:
    async def test_email_tags_carry_postrooms_id_and_the_metadata_that_keeps_to_ses_characters(
        self, ses: SesServer, transport: SesTransport, tagged_message: OutgoingMessage
    ) -> None:
        await transport.send(tagged_message)
        [request] = ses.received
        # The address is left out (no "@" in a tag), as is the spoofed id; nothing is rewritten.
        assert request.json["EmailTags"] == [
            {"Name": "postroom_message_id", "Value": tagged_message.id},
            {"Name": "order", "Value": "42"},
            {"Name": "a_rather_long_field_name", "Value": "x"},
            {"Name": "note", "Value": "y" * 100},
        ]
        assert request.mime is not None
        assert request.mime["Message-ID"] == f"<{tagged_message.id}@example.com>"

    async def test_values_longer_than_256_characters_are_left_out(
        self, ses: SesServer, transport: SesTransport, oversized_message: OutgoingMessage
    ) -> None:
        await transport.send(oversized_message)  # the look-alike refuses a tag it would not take
        [request] = ses.received
        assert request.json["EmailTags"] == [
            {"Name": "postroom_message_id", "Value": oversized_message.id}
        ]

    async def test_the_receipt_carries_the_message_id(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage
    ) -> None:
        receipt = await transport.send(message)
        assert receipt.provider_message_id == ses.issued_ids[0]

    @pytest.mark.parametrize("odd", ["0100\x00abc", "x" * 300, 42, {"Id": "nested"}])
    async def test_an_odd_message_id_is_not_kept(
        self, ses: SesServer, transport: SesTransport, message: OutgoingMessage, odd: object
    ) -> None:
        ses.script(Answer(200, {"MessageId": odd}))
        receipt = await transport.send(message)
        assert receipt.code == 200
        assert receipt.provider_message_id is None

    async def test_the_attempt_records_the_ses_message_id(
        self, harness_factory: HarnessFactory, ses: SesServer
    ) -> None:
        async with harness_factory(providers={"ses_endpoint": ses.url}) as h:
            credential = (
                await h.client.post("/service-credentials/aws-ses", json=_credential())
            ).json()
            created = await make_message(
                h.client, status="outbox", credentialHash=credential["id"], metadata={"k": "v"}
            )
            assert await h.deliver() == 1
            [request] = ses.received
            assert request.json["EmailTags"] == [
                {"Name": "postroom_message_id", "Value": created["id"]},
                {"Name": "k", "Value": "v"},
            ]
            [attempt] = await h.attempts(created["id"])
            assert (attempt["outcome"], attempt["providerMessageId"]) == ("sent", ses.issued_ids[0])
