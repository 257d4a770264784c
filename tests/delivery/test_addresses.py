"""Addresses as typed: stored, returned and sent as the client wrote them (once valid), and
SMTPUTF8 only for an address that holds non-ASCII characters."""

from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server

PUNYCODE = "Customer@xn--bcher-kva.example"  # bücher.example, as a client may well type it


class TestAsTyped:
    async def test_a_punycode_recipient_is_returned_and_sent_as_typed_without_smtputf8(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                created = await make_message(
                    h.client, status="outbox", to=[PUNYCODE], cc=["Billing@Shop.Example.COM"]
                )
                assert (created["to"], created["cc"]) == ([PUNYCODE], ["Billing@Shop.Example.COM"])
                assert (await h.message(created["id"]))["to"] == [PUNYCODE]
                assert await h.deliver() == 1

                [received] = smtp.received
                assert "SMTPUTF8" not in received.mail_options
                assert sorted(received.rcpt_tos) == sorted([PUNYCODE, "Billing@Shop.Example.COM"])
                assert received.data.isascii()
                assert [a.addr_spec for a in received.message["To"].addresses] == [PUNYCODE]

    async def test_a_non_ascii_local_part_goes_with_smtputf8(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                created = await make_message(h.client, status="outbox", to=["zoë@example.com"])
                assert created["to"] == ["zoë@example.com"]
                assert await h.deliver() == 1

                [received] = smtp.received
                assert "SMTPUTF8" in received.mail_options
                assert received.rcpt_tos == ["zoë@example.com"]
                assert "To: zoë@example.com\r\n".encode() in received.data

    async def test_surrounding_whitespace_is_dropped_and_an_invalid_address_refused(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, to=["  to@example.com\n"])
            assert created["to"] == ["to@example.com"]
            refused = await h.client.post(
                "/email-messages",
                json={
                    "from": "sender@example.com",
                    "to": ["a@xn--zz.example"],  # not a valid A-label
                    "subject": "s",
                    "text": "t",
                    "html": "h",
                },
            )
            assert refused.status_code == 422
