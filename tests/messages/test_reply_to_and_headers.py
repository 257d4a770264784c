"""replyTo and extra headers (postroom's additions): refused where they would change the message's
structure, routing or sender, named in the 422; carried by SMTP and by every provider."""

from datetime import UTC, datetime

import httpx
import pytest

from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.transports.mailgun import MailgunTransport
from postroom.delivery.transports.postmark import PostmarkTransport
from postroom.delivery.transports.sendgrid import SendGridTransport
from tests.delivery.transports.conftest import LIMITS
from tests.factories import make_message, message_body
from tests.harness import HarnessFactory
from tests.servers.esp import MailgunServer, PostmarkServer, SendGridServer, serving
from tests.servers.smtp import smtp_server

REPLY_TO = ["support@example.com", "help@example.com"]
HEADERS = {"X-Campaign": "winter-2026", "References": "<a@example.com>", "X-Note": "café au lait"}

FORBIDDEN = [
    "From",
    "to",
    "CC",
    "Bcc",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "content-transfer-encoding",
    "Return-Path",
    "Received",
    "DKIM-Signature",
    "ARC-Seal",
    "Resent-From",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "X-Postroom-Anything",
]


def _problem_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [f["field"] for f in response.json()["invalidFields"]]


class TestValidation:
    async def test_reply_to_and_headers_are_stored_and_shown(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_message(
            client, replyTo=["support@example.com"], headers={"X-Campaign": "w"}
        )
        assert created["replyTo"] == ["support@example.com"]
        assert created["headers"] == {"X-Campaign": "w"}
        shown = (await client.get(f"/email-messages/{created['id']}")).json()
        assert (shown["replyTo"], shown["headers"]) == (
            ["support@example.com"],
            {"X-Campaign": "w"},
        )
        plain = await make_message(client)
        assert (plain["replyTo"], plain["headers"]) == ([], {})

    @pytest.mark.parametrize("name", FORBIDDEN)
    async def test_a_header_that_changes_structure_routing_or_sender_is_422_naming_it(
        self, client: httpx.AsyncClient, name: str
    ) -> None:
        response = await client.post(
            "/email-messages", json=message_body(headers={"X-Fine": "1", name: "x"})
        )
        assert _problem_fields(response) == [f"headers.{name}"]

    @pytest.mark.parametrize(
        ("headers", "field"),
        [
            ({"Bad Name": "x"}, "headers.Bad Name"),
            ({"Bad:Name": "x"}, "headers.Bad:Name"),
            ({"": "x"}, "headers."),
            ({"X-A": "line\r\nBcc: victim@example.com"}, "headers.X-A"),
            ({"X-A": "nul\x00"}, "headers.X-A"),
            ({"X-A": "v" * 901}, "headers.X-A"),
            ({f"X-{n}": "v" for n in range(21)}, "headers"),
        ],
    )
    async def test_malformed_headers_are_422(
        self, client: httpx.AsyncClient, headers: dict[str, str], field: str
    ) -> None:
        response = await client.post("/email-messages", json=message_body(headers=headers))
        assert _problem_fields(response) == [field]

    async def test_reply_to_is_validated_like_to(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(replyTo=["ok@example.com", "not an address"])
        )
        assert _problem_fields(response) == ["replyTo.1"]
        too_many = [f"r{n}@example.com" for n in range(11)]
        response = await client.post("/email-messages", json=message_body(replyTo=too_many))
        assert _problem_fields(response) == ["replyTo"]


class TestSmtp:
    async def test_reply_to_and_headers_arrive_over_smtp(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                created = await make_message(
                    h.client, status="outbox", replyTo=REPLY_TO, headers=HEADERS
                )
                await h.deliver()
                [received] = smtp.received
                parsed = received.message
                assert [str(a) for a in parsed["Reply-To"].addresses] == REPLY_TO
                for name, value in HEADERS.items():
                    assert parsed[name] == value
                # Reply-To is a header only: the envelope is unchanged.
                assert "support@example.com" not in received.rcpt_tos
                # A resend copies both.
                response = await h.client.post(f"/email-messages/{created['id']}/resend")
                assert response.status_code == 201, response.text
                copy = response.json()
                assert (copy["replyTo"], copy["headers"]) == (REPLY_TO, HEADERS)


@pytest.fixture
def sent() -> OutgoingMessage:
    return OutgoingMessage(
        id="mail_msg_01JDTESTMESSAGE0000000002",
        sender="app@example.com",
        to=("one@example.com",),
        cc=(),
        bcc=(),
        subject="Hello",
        text="Hi",
        html="<p>Hi</p>",
        date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        reply_to=tuple(REPLY_TO),
        headers=HEADERS,
    )


class TestProviders:
    async def test_sendgrid_gets_reply_to_list_and_headers(self, sent: OutgoingMessage) -> None:
        with serving(SendGridServer("SG.key")) as server:
            transport = SendGridTransport("SG.key", server.url, LIMITS)
            try:
                await transport.send(sent)
            finally:
                await transport.aclose()
        [request] = server.received
        assert request.json["reply_to_list"] == [{"email": a} for a in REPLY_TO]
        assert request.json["headers"] == {**HEADERS, "Message-ID": sent.message_id_header}

    async def test_mailgun_gets_h_fields(self, sent: OutgoingMessage) -> None:
        with serving(MailgunServer("key-1", "mg.example.com")) as server:
            transport = MailgunTransport("key-1", "mg.example.com", server.url, LIMITS)
            try:
                await transport.send(sent)
            finally:
                await transport.aclose()
        [request] = server.received
        assert request.values("h:Reply-To") == [", ".join(REPLY_TO)]
        for name, value in HEADERS.items():
            assert request.values(f"h:{name}") == [value]
        assert request.values("h:Message-Id") == [sent.message_id_header]

    async def test_postmark_gets_reply_to_and_headers(self, sent: OutgoingMessage) -> None:
        with serving(PostmarkServer("pm-token")) as server:
            transport = PostmarkTransport("pm-token", server.url, LIMITS)
            try:
                await transport.send(sent)
            finally:
                await transport.aclose()
        [request] = server.received
        assert request.json["ReplyTo"] == ", ".join(REPLY_TO)
        assert request.json["Headers"] == [
            *({"Name": n, "Value": v} for n, v in HEADERS.items()),
            {"Name": "Message-ID", "Value": sent.message_id_header},
        ]
