"""PATCH /service-credentials/{type}/{id}: any field of the type changes, a secret given
replaces the stored one (and the worker sends with it), deactivated is final (422)."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.crypto import SecretBox
from postroom.credentials import service
from postroom.settings import Settings
from tests.credentials.test_provider_types import CASES, IDS
from tests.credentials.test_router import PASSWORD, smtp_credential
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server


async def _create(client: httpx.AsyncClient, type_: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/service-credentials/{type_}", json={"type": type_, **body})
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["id"]
    return credential_id


async def _secrets(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, credential_id: str
) -> dict[str, str]:
    async with sessionmaker() as session:
        box = SecretBox(settings.stored_secret())
        found = await service.load_for_delivery(session, {credential_id}, box)
    return found[credential_id].secrets


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [f["field"] for f in response.json()["invalidFields"]]


class TestChangeAnyField:
    @pytest.mark.parametrize(
        ("type_", "create", "patch", "shown"),
        [
            ("smtp", smtp_credential(), {"host": "mx2.example.com", "port": 2525},
             {"host": "mx2.example.com", "port": 2525, "encryption": "tls"}),
            ("smtp", smtp_credential(), {"encryption": "ssl", "auth": {"type": "none"}},
             {"encryption": "ssl", "auth": {"type": "none"}}),
            ("smtp", smtp_credential(),
             {"auth": {"type": "login", "username": "other", "password": "new-pass"}},
             {"auth": {"type": "login", "username": "other"}}),
            ("mailgun", CASES[1][1], {"emailFrom": "x@example.com", "domain": "mg2.example.com",
                                      "region": "eu"},
             {"emailFrom": "x@example.com", "domain": "mg2.example.com", "region": "eu"}),
            ("aws-ses", CASES[3][1], {"key": "AKIAOTHERKEY00000000", "region": "eu-west-1",
                                      "configurationSetName": "Other"},
             {"key": "AKIAOTHERKEY00000000", "region": "eu-west-1",
              "configurationSetName": "Other"}),
        ],
    )  # fmt: skip
    async def test_public_fields_change_and_the_rest_stays(
        self,
        client: httpx.AsyncClient,
        type_: str,
        create: dict[str, Any],
        patch: dict[str, Any],
        shown: dict[str, Any],
    ) -> None:
        credential_id = await _create(client, type_, create)
        url = f"/service-credentials/{type_}/{credential_id}"
        before = (await client.get(url)).json()
        response = await client.patch(url, json=patch)
        assert response.status_code == 200, response.text
        assert response.json() == {**before, **shown}
        assert (await client.get(url)).json() == {**before, **shown}
        assert "new-pass" not in response.text

    async def test_a_null_configuration_set_takes_it_away(self, client: httpx.AsyncClient) -> None:
        credential_id = await _create(client, "aws-ses", CASES[3][1])
        url = f"/service-credentials/aws-ses/{credential_id}"
        response = await client.patch(url, json={"configurationSetName": None})
        assert response.status_code == 200, response.text
        assert "configurationSetName" not in response.json()

    @pytest.mark.parametrize(
        ("type_", "patch", "key", "value"),
        [
            ("smtp", {"auth": {"type": "plain", "username": "mailer", "password": "rotated"}},
             "password", "rotated"),
            ("sendgrid", {"apiKey": "SG.rotated"}, "api_key", "SG.rotated"),
            ("mailgun", {"apiKey": "key-rotated"}, "api_key", "key-rotated"),
            ("postmark", {"serverApiToken": "token-rotated"}, "server_token", "token-rotated"),
            ("aws-ses", {"secret": "secret-rotated"}, "secret_key", "secret-rotated"),
        ],
    )  # fmt: skip
    async def test_a_secret_given_replaces_the_stored_one(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        type_: str,
        patch: dict[str, Any],
        key: str,
        value: str,
    ) -> None:
        create = smtp_credential() if type_ == "smtp" else dict(CASES[IDS.index(type_)][1])
        credential_id = await _create(client, type_, create)
        response = await client.patch(f"/service-credentials/{type_}/{credential_id}", json=patch)
        assert response.status_code == 200, response.text
        assert value not in response.text
        assert (await _secrets(sessionmaker, settings, credential_id))[key] == value

    async def test_a_public_change_keeps_the_secret(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        url = f"/service-credentials/smtp/{credential_id}"
        assert (await client.patch(url, json={"port": 2525})).status_code == 200
        assert await _secrets(sessionmaker, settings, credential_id) == {"password": PASSWORD}

    async def test_auth_without_a_password_keeps_the_stored_one(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        url = f"/service-credentials/smtp/{credential_id}"
        read_back = (await client.get(url)).json()
        read_back["auth"]["username"] = "renamed"
        response = await client.patch(url, json=read_back)
        assert response.status_code == 200, response.text
        assert response.json()["auth"] == {"type": "plain", "username": "renamed"}
        assert await _secrets(sessionmaker, settings, credential_id) == {"password": PASSWORD}

    async def test_auth_without_a_password_and_none_stored_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential(auth={"type": "none"}))
        response = await client.patch(
            f"/service-credentials/smtp/{credential_id}",
            json={"auth": {"type": "login", "username": "u"}},
        )
        assert _fields(response) == ["auth.password"]

    async def test_auth_none_drops_the_password(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        url = f"/service-credentials/smtp/{credential_id}"
        assert (await client.patch(url, json={"auth": {"type": "none"}})).status_code == 200
        assert await _secrets(sessionmaker, settings, credential_id) == {}

    async def test_max_send_rate_and_status_change_together_with_fields(
        self, client: httpx.AsyncClient
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        url = f"/service-credentials/smtp/{credential_id}"
        response = await client.patch(
            url, json={"status": "inactive", "maxSendRate": 5, "host": "mx9.example.com"}
        )
        body = response.json()
        assert (body["status"], body["maxSendRate"], body["host"]) == (
            "inactive",
            5,
            "mx9.example.com",
        )


class TestInvalid:
    @pytest.mark.parametrize(
        ("type_", "patch", "field"),
        [
            ("smtp", {"host": "bad host!"}, "host"),
            ("smtp", {"host": None}, "host"),
            ("smtp", {"port": 0}, "port"),
            ("smtp", {"encryption": "starttls"}, "encryption"),
            ("smtp", {"auth": {"type": "plain", "password": "p"}}, "auth.plain.username"),
            ("sendgrid", {"apiKey": ""}, "apiKey"),
            ("mailgun", {"emailFrom": "nope"}, "emailFrom"),
            ("mailgun", {"region": "asia"}, "region"),
            ("postmark", {"serverApiToken": "t\r\nX: 1"}, "serverApiToken"),
            ("aws-ses", {"region": "mars-1"}, "region"),
            ("aws-ses", {"key": None}, "key"),
            ("aws-ses", {"configurationSetName": "no spaces"}, "configurationSetName"),
            ("smtp", {"status": "gone"}, "status"),
            ("smtp", {"status": None}, "status"),
        ],
    )  # fmt: skip
    async def test_an_invalid_field_is_422_naming_it(
        self, client: httpx.AsyncClient, type_: str, patch: dict[str, Any], field: str
    ) -> None:
        create = smtp_credential() if type_ == "smtp" else dict(CASES[IDS.index(type_)][1])
        credential_id = await _create(client, type_, create)
        response = await client.patch(f"/service-credentials/{type_}/{credential_id}", json=patch)
        assert field in _fields(response)

    async def test_nothing_to_change_is_422(self, client: httpx.AsyncClient) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        response = await client.patch(
            f"/service-credentials/smtp/{credential_id}", json={"type": "smtp"}
        )
        assert response.status_code == 422

    async def test_a_host_the_destination_policy_refuses_is_422_on_host(
        self, client: httpx.AsyncClient
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        response = await client.patch(
            f"/service-credentials/smtp/{credential_id}", json={"host": "10.1.2.3"}
        )
        assert _fields(response) == ["host"]


class TestDeactivated:
    @pytest.mark.parametrize(
        "patch",
        [{"status": "active"}, {"status": "inactive"}, {"host": "mx.example.com"}],
        ids=["reactivate", "inactivate", "host"],
    )
    async def test_any_change_of_a_deactivated_credential_is_422(
        self, client: httpx.AsyncClient, patch: dict[str, Any]
    ) -> None:
        credential_id = await _create(client, "smtp", smtp_credential())
        url = f"/service-credentials/smtp/{credential_id}"
        assert (await client.patch(url, json={"status": "deactivated"})).status_code == 200
        response = await client.patch(url, json=patch)
        assert _fields(response) == [next(iter(patch))]
        assert "final" in response.json()["invalidFields"][0]["message"]
        assert (await client.get(url)).json()["status"] == "deactivated"


class TestRotationReachesTheWorker:
    async def test_a_rotated_password_is_used_for_the_next_send(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server(auth=("mailer", "new-password")) as smtp:
            async with harness_factory() as h:
                credential_id = await _create(
                    h.client,
                    "smtp",
                    smtp_credential(
                        host="127.0.0.1",
                        port=smtp.port,
                        encryption="none",
                        auth={"type": "plain", "username": "mailer", "password": "old-password"},
                    ),
                )
                refused = await make_message(
                    h.client, status="outbox", credentialHash=credential_id
                )
                await h.deliver()
                assert (await h.message(refused["id"]))["status"] == "failed"
                # The harness clock stands still: the credential's updated_at does not change,
                # so the transport built with the old password must be replaced all the same.
                rotated = await h.client.patch(
                    f"/service-credentials/smtp/{credential_id}",
                    json={
                        "auth": {"type": "plain", "username": "mailer", "password": "new-password"}
                    },
                )
                assert rotated.status_code == 200, rotated.text
                sent = await make_message(h.client, status="outbox", credentialHash=credential_id)
                await h.deliver()
                assert (await h.message(sent["id"]))["status"] == "sent"
                [received] = smtp.received
                assert received.authenticated_as == "mailer"
