"""HTTP tests of credentials/router.py: /service-credentials/smtp, and secrets kept secret."""

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.logging import JsonFormatter
from tests.factories import make_message, message_body
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server

PASSWORD = "pa55-w0rd-n0t-for-l0gs"


def smtp_credential(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "smtp",
        "host": "smtp.example.com",
        "port": 587,
        "encryption": "tls",
        "auth": {"type": "plain", "username": "mailer", "password": PASSWORD},
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/service-credentials/smtp", json=smtp_credential(**overrides))
    assert response.status_code == 201, response.text
    assert PASSWORD not in response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreate:
    async def test_create_returns_the_credential_without_its_password(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/service-credentials/smtp", json=smtp_credential())
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == body["_links"][0]["href"]
        assert body["id"].startswith("crd_")
        assert body["hash"] == body["id"]
        assert body["status"] == "active"
        assert body["deactivationTime"] is None
        assert body["auth"] == {"type": "plain", "username": "mailer"}
        assert (body["host"], body["port"], body["encryption"]) == ("smtp.example.com", 587, "tls")

    async def test_defaults_are_port_25_no_encryption_no_auth(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/service-credentials/smtp", json={"host": "mx.example.com"})
        body = response.json()
        assert (body["port"], body["encryption"], body["auth"]) == (25, "none", {"type": "none"})

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"host": ""}, "host"),
            ({"port": 0}, "port"),
            ({"port": 65536}, "port"),
            ({"encryption": "starttls"}, "encryption"),
            ({"auth": {"type": "login", "username": "u"}}, "auth.login.password"),
            ({"auth": {"type": "kerberos"}}, "auth"),
            # Control characters in a secret or username: a pasting accident at best.
            (
                {"auth": {"type": "plain", "username": "u", "password": "p\r\nQUIT"}},
                "auth.plain.password",
            ),
            (
                {"auth": {"type": "plain", "username": "u", "password": "p\x00"}},
                "auth.plain.password",
            ),
            (
                {"auth": {"type": "plain", "username": "u", "password": "p\tw"}},
                "auth.plain.password",
            ),
            (
                {"auth": {"type": "login", "username": "u\x1b", "password": "p"}},
                "auth.login.username",
            ),
        ],
    )
    async def test_invalid_field_is_422_naming_it(
        self, client: httpx.AsyncClient, overrides: dict[str, Any], field: str
    ) -> None:
        response = await client.post("/service-credentials/smtp", json=smtp_credential(**overrides))
        assert response.status_code == 422
        assert field in [f["field"] for f in response.json()["invalidFields"]]

    async def test_unsupported_type_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/service-credentials/paypal")
        assert response.status_code == 404


class TestSecrets:
    async def test_password_is_never_returned_by_get_or_list(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create(client)
        one = await client.get(f"/service-credentials/smtp/{created['id']}")
        many = await client.get("/service-credentials/smtp")
        assert one.status_code == many.status_code == 200
        assert PASSWORD not in one.text and PASSWORD not in many.text
        assert [c["id"] for c in many.json()] == [created["id"]]

    async def test_database_holds_ciphertext(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        created = await create(client)
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT settings, secret FROM service_credentials WHERE id = :id"),
                    {"id": created["id"]},
                )
            ).one()
        assert PASSWORD not in str(row.settings)
        assert PASSWORD not in row.secret
        assert row.secret.startswith("gAAAAA")  # a Fernet token

    async def test_a_full_send_logs_no_secret(
        self, harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with smtp_server(auth=("mailer", PASSWORD)) as smtp:
            async with harness_factory() as h:
                credential = await create(
                    h.client, host="127.0.0.1", port=smtp.port, encryption="none"
                )
                await make_message(h.client, status="outbox", credentialHash=credential["id"])
                await h.deliver()
                assert len(smtp.received) == 1
        formatter = JsonFormatter()
        logged = "\n".join(formatter.format(record) for record in caplog.records)
        assert "delivery attempt" in logged
        assert PASSWORD not in logged


class TestStatus:
    async def test_inactive_and_back_to_active(self, client: httpx.AsyncClient) -> None:
        created = await create(client)
        url = f"/service-credentials/smtp/{created['id']}"
        inactive = await client.patch(url, json={"status": "inactive", "type": "smtp"})
        assert inactive.status_code == 200 and inactive.json()["status"] == "inactive"
        active = await client.patch(url, json={"status": "active"})
        assert active.json()["status"] == "active"

    async def test_deactivated_is_final(self, client: httpx.AsyncClient) -> None:
        created = await create(client)
        url = f"/service-credentials/smtp/{created['id']}"
        deactivated = await client.patch(url, json={"status": "deactivated"})
        assert deactivated.status_code == 200
        assert deactivated.json()["deactivationTime"] is not None
        again = await client.patch(url, json={"status": "active"})
        assert again.status_code == 422
        assert [f["field"] for f in again.json()["invalidFields"]] == ["status"]
        assert again.headers["content-type"] == "application/problem+json"

    async def test_patch_with_another_type_is_422(self, client: httpx.AsyncClient) -> None:
        created = await create(client)
        response = await client.patch(
            f"/service-credentials/smtp/{created['id']}",
            json={"status": "inactive", "type": "mailgun"},
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == ["type"]

    async def test_filter_by_status(self, client: httpx.AsyncClient) -> None:
        active = await create(client)
        inactive = await create(client)
        await client.patch(
            f"/service-credentials/smtp/{inactive['id']}", json={"status": "inactive"}
        )
        response = await client.get("/service-credentials/smtp", params={"filter": "status:active"})
        assert [c["id"] for c in response.json()] == [active["id"]]
        assert response.headers["pagination-total"] == "1"


class TestScope:
    async def test_another_organizations_credential_is_404(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:  # fmt: skip
        from postroom.auth import service as auth
        from postroom.core.clock import SystemClock

        created = await create(client)
        async with sessionmaker() as session, session.begin():
            other = await auth.create_organization(session, "other", SystemClock().now())
        headers = {"REB-APIKEY": other.api_key}
        response = await anonymous.get(
            f"/service-credentials/smtp/{created['id']}", headers=headers
        )
        assert response.status_code == 404
        message = await anonymous.post(
            "/email-messages", json=message_body(credentialHash=created["id"]), headers=headers
        )
        assert message.status_code == 422
        assert message.json()["invalidFields"][0]["field"] == "credentialHash"


class TestMessagesNamingCredentials:
    async def test_unknown_credential_hash_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(credentialHash="crd_does_not_exist")
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "credentialHash"

    async def test_known_credential_hash_is_stored(self, client: httpx.AsyncClient) -> None:
        credential = await create(client)
        message = await make_message(client, credentialHash=credential["id"])
        assert message["credentialHash"] == credential["id"]
