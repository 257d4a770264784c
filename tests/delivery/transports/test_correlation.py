"""delivery/transports/correlation.py: the provider id read from what a server answered, kept
only when it is sane; and the SMTP queue id through the real worker, from a well-behaved server
and from a hostile one."""

import pytest

from postroom.delivery.transports.correlation import provider_id, smtp_queue_id
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.smtp import hostile_server, smtp_server


class TestSmtpQueueId:
    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            ("2.0.0 Ok: queued as 4Bxyz1AbcD", "4Bxyz1AbcD"),  # Postfix, long queue ids
            ("2.0.0 Ok: queued as 1A2B3C4D5E", "1A2B3C4D5E"),  # Postfix, short ones
            ("2.0.0 OK queued as 1A2B3C4D5E6F", "1A2B3C4D5E6F"),
            ("OK id=1tAbCd-000Xyz-Ab", "1tAbCd-000Xyz-Ab"),  # Exim
            ("2.0.0 wBQ1234 Message accepted for delivery", None),  # sendmail
            ("2.6.0 <a@b.example> [InternalId=1] Queued mail for delivery", None),  # Exchange
            ("2.0.0 OK", None),
            ("", None),
            ("2.0.0 Ok: queued as " + "A" * 100, None),  # longer than any queue id
            ("2.0.0 OK\ufffdqueued as 1A2B", "1A2B"),  # what a NUL became when stored
            ("2.0.0 Ok: queued as 4Bxyz\x00junk", "4Bxyz"),
            ("x" * 5000 + " queued as 4Bxyz", None),  # only the start of a reply is read
            ("grid=abc valid=1 queued as", None),
        ],
    )
    def test_the_queue_id_where_the_reply_names_one(self, reply: str, expected: str | None) -> None:
        assert smtp_queue_id(reply) == expected


class TestProviderId:
    @pytest.mark.parametrize(
        "value",
        ["", "   ", "a b", "a\x00b", "caf\u00e9", "x" * 256, "line\r\nbreak", 42, None, ["x"]],
    )
    def test_an_odd_id_is_not_kept(self, value: object) -> None:
        assert provider_id(value) is None

    def test_a_sane_id_is_kept_trimmed(self) -> None:
        assert provider_id(" 20261204.1a2b@mg.example.com ") == "20261204.1a2b@mg.example.com"
        assert provider_id("x" * 255) == "x" * 255


class TestThroughTheWorker:
    async def test_the_attempt_records_the_queue_id_of_the_reply_to_data(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                created = await make_message(h.client, status="outbox")
                assert await h.deliver() == 1
                [received] = smtp.received
                queue_id = received.reply.rpartition(" ")[2]
                [attempt] = await h.attempts(created["id"])
                assert (attempt["outcome"], attempt["providerMessageId"]) == ("sent", queue_id)

    @pytest.mark.parametrize(
        ("data_reply", "expected"),
        [
            (b"250 OK id=1tAbCd-000Xyz-Ab\r\n", "1tAbCd-000Xyz-Ab"),
            (b"250 2.0.0 Ok: queued as " + b"A" * 5000 + b"\r\n", None),
            (b"250 2.0.0 Ok: queued as \x00\xff\xfe\r\n", None),
            (b"250 2.0.0 Message accepted for delivery\r\n", None),
        ],
    )
    async def test_a_hostile_reply_leaves_no_id_and_the_message_sent(
        self, harness_factory: HarnessFactory, data_reply: bytes, expected: str | None
    ) -> None:
        async with (
            hostile_server(data_reply=data_reply) as hostile,
            harness_factory(smtp_url=f"smtp://127.0.0.1:{hostile.port}") as h,
        ):
            created = await make_message(h.client, status="outbox")
            assert await h.deliver() == 1
            assert (await h.message(created["id"]))["status"] == "sent"
            [attempt] = await h.attempts(created["id"])
            assert (attempt["outcome"], attempt["providerMessageId"]) == ("sent", expected)
