"""The worker and the destination policy, and the SMTP deadlines: a name that resolves to a
refused address is never connected to; a peer that is not an SMTP server is reported as such,
never quoted; a server that greets and then stalls is given up on at the EHLO deadline."""

from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_message
from tests.harness import Harness, HarnessFactory
from tests.servers.raw import raw_server
from tests.servers.smtp import smtp_server, write_ca_pem

POLICY = "is not an allowed destination (POSTROOM_DESTINATIONS__ALLOW)"
NATS_BANNER = (
    b'INFO {"server_id":"NDQSECRETSERVERID","server_name":"internal-nats","version":"2.10.7",'
    b'"go":"go1.21.5","host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576}\r\n'
)
MYSQL_GREETING = b"J\x00\x00\x00\n8.0.36-internal-db\x00\x08\x00\x00\x00secretsalt\x00\xff\xf7"


async def _send_through(h: Harness, host: str, port: int) -> dict[str, Any]:
    credential = await h.client.post("/service-credentials/smtp", json={"host": host, "port": port})
    assert credential.status_code == 201, credential.text
    created = await make_message(h.client, status="outbox", credentialHash=credential.json()["id"])
    await h.deliver()
    return await h.message(created["id"])


class TestPolicyAtConnect:
    async def test_a_name_resolving_to_a_refused_address_fails_and_nothing_is_connected_to(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(destinations="") as h:
                record = await _send_through(h, "localhost", smtp.port)
                assert record["status"] == "failed"
                assert record["responseBody"] == f"localhost {POLICY}"
                [attempt] = await h.attempts(record["id"])
                assert attempt["outcome"] == "permanent"
            assert smtp.connections == 0
            assert smtp.received == []

    async def test_an_allowed_name_delivers_to_its_address(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(destinations="localhost") as h:
                record = await _send_through(h, "localhost", smtp.port)
                assert record["status"] == "sent", record["responseBody"]
            assert len(smtp.received) == 1

    async def test_a_name_is_connected_to_at_an_allowed_address_of_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        # "localhost" may resolve to ::1 too: only 127.0.0.1 is allowed, and listened on.
        with smtp_server() as smtp:
            async with harness_factory(destinations="127.0.0.1") as h:
                record = await _send_through(h, "localhost", smtp.port)
                assert record["status"] == "sent", record["responseBody"]
            assert len(smtp.received) == 1


class TestNotAnSmtpServer:
    @pytest.mark.parametrize("banner", [NATS_BANNER, MYSQL_GREETING], ids=["nats", "mysql"])
    async def test_another_service_is_reported_without_its_bytes(
        self, harness_factory: HarnessFactory, banner: bytes
    ) -> None:
        async with (
            raw_server(banner) as server,
            harness_factory(smtp_greeting_timeout_seconds=1) as h,
        ):
            record = await _send_through(h, "127.0.0.1", server.port)
            assert record["status"] == "outbox"
            assert record["responseBody"] == f"not an SMTP server at 127.0.0.1:{server.port}"
            [attempt] = await h.attempts(record["id"])
            assert attempt["outcome"] == "transient"
            assert attempt["responseBody"] == record["responseBody"]
            assert server.connections == 1

    async def test_a_closed_port_and_a_refused_connection_say_only_cannot_connect(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with raw_server(b"") as server:
            port = server.port
        async with harness_factory() as h:
            record = await _send_through(h, "127.0.0.1", port)
            assert record["responseBody"] == f"cannot connect to 127.0.0.1:{port}"


class TestDeadlines:
    async def test_a_server_that_greets_and_never_answers_ehlo_fails_at_the_ehlo_deadline(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with (
            raw_server(b"220 tarpit.example.com ESMTP\r\n") as server,
            harness_factory(smtp_handshake_timeout_seconds=0.5) as h,
        ):
            record = await _send_through(h, "127.0.0.1", server.port)
            assert record["status"] == "outbox"
            assert record["responseBody"] == (
                f"no answer to EHLO from 127.0.0.1:{server.port} within 0.5 s"
            )
            assert bytes(server.received).startswith(b"EHLO ")

    async def test_the_message_deadline_bounds_every_step_together(
        self, harness_factory: HarnessFactory
    ) -> None:
        # Each step may take 10 s; the whole message only 1 s, against a DATA reply after 4 s.
        with smtp_server(hold_data_seconds=4) as smtp:
            async with harness_factory(message_timeout_seconds=1) as h:
                record = await _send_through(h, "127.0.0.1", smtp.port)
                assert record["status"] == "outbox"
                [attempt] = await h.attempts(record["id"])
                assert attempt["outcome"] == "unknown"
                assert "message deadline (1 s)" in attempt["responseBody"]


class TestTls:
    async def test_implicit_tls_to_a_checked_address_verifies_the_host_name(
        self, harness_factory: HarnessFactory, tmp_path: Path
    ) -> None:
        with smtp_server(implicit_tls=True) as smtp:
            async with harness_factory(
                ca_file=write_ca_pem(tmp_path / "ca.pem"), destinations="127.0.0.1"
            ) as h:
                credential = await h.client.post(
                    "/service-credentials/smtp",
                    json={"host": "localhost", "port": smtp.port, "encryption": "ssl"},
                )
                created = await make_message(
                    h.client, status="outbox", credentialHash=credential.json()["id"]
                )
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "sent", record["responseBody"]

    async def test_a_certificate_for_another_name_is_refused(
        self, harness_factory: HarnessFactory, tmp_path: Path
    ) -> None:
        # The test certificate names 127.0.0.1 and localhost, not "2130706433", which resolves
        # (and is connected) to 127.0.0.1 but is, for TLS, another name.
        with smtp_server(implicit_tls=True) as smtp:
            async with harness_factory(
                ca_file=write_ca_pem(tmp_path / "ca.pem"), destinations="127.0.0.1"
            ) as h:
                credential = await h.client.post(
                    "/service-credentials/smtp",
                    json={"host": "2130706433", "port": smtp.port, "encryption": "ssl"},
                )
                assert credential.status_code == 201, credential.text
                created = await make_message(
                    h.client, status="outbox", credentialHash=credential.json()["id"]
                )
                await h.deliver()
                record = await h.message(created["id"])
                assert record["status"] == "outbox"
                assert record["responseBody"].startswith(f"TLS with 2130706433:{smtp.port} failed")
                assert "certificate verify failed" in record["responseBody"]
                assert smtp.received == []
