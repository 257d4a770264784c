"""HTTP tests of credentials/router.py for every type beside smtp: sendgrid, mailgun, postmark,
aws-ses (Rebilly's contract field names) and postroom's simulator; secrets kept secret."""

import logging
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.logging import JsonFormatter
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import MailgunServer, PostmarkServer, SendGridServer, SesServer, serving

SENDGRID_KEY = "SG.sendgrid-secret-never-shown"
MAILGUN_KEY = "key-mailgun-secret-never-shown"
POSTMARK_TOKEN = "postmark-token-never-shown"
AWS_SECRET = "aws/secret+key-never-shown"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRETS = [SENDGRID_KEY, MAILGUN_KEY, POSTMARK_TOKEN, AWS_SECRET]

# type, what to POST, the secret in it, what GET shows besides the common fields
CASES: list[tuple[str, dict[str, Any], str | None, dict[str, Any]]] = [
    ("sendgrid", {"apiKey": SENDGRID_KEY}, SENDGRID_KEY, {}),
    (
        "mailgun",
        {"emailFrom": "billing@example.com", "apiKey": MAILGUN_KEY, "domain": "mg.example.com"},
        MAILGUN_KEY,
        {"emailFrom": "billing@example.com", "domain": "mg.example.com", "region": "us"},
    ),
    ("postmark", {"serverApiToken": POSTMARK_TOKEN}, POSTMARK_TOKEN, {}),
    (
        "aws-ses",
        {
            "key": AWS_KEY,
            "secret": AWS_SECRET,
            "region": "us-west-2",
            "configurationSetName": "SpecialConfigurationSet",
        },
        AWS_SECRET,
        {"key": AWS_KEY, "region": "us-west-2", "configurationSetName": "SpecialConfigurationSet"},
    ),
    ("simulator", {}, None, {}),
]
IDS = [case[0] for case in CASES]
MAILGUN = {"emailFrom": "a@example.com", "apiKey": "k", "domain": "mg.example.com"}


async def create(client: httpx.AsyncClient, type_: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/service-credentials/{type_}", json={"type": type_, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreate:
    @pytest.mark.parametrize(("type_", "body", "secret", "shown"), CASES, ids=IDS)
    async def test_create_returns_the_public_fields_and_never_the_secret(
        self,
        client: httpx.AsyncClient,
        type_: str,
        body: dict[str, Any],
        secret: str | None,
        shown: dict[str, Any],
    ) -> None:
        response = await client.post(f"/service-credentials/{type_}", json={"type": type_, **body})
        assert response.status_code == 201, response.text
        created = response.json()
        assert response.headers["location"] == created["_links"][0]["href"]
        assert created["id"].startswith("crd_") and created["hash"] == created["id"]
        assert (created["type"], created["status"]) == (type_, "active")
        assert created["deactivationTime"] is None and created["maxSendRate"] is None
        common = {"id", "hash", "type", "status", "deactivationTime", "maxSendRate", "_links"}
        if type_ in ("sendgrid", "mailgun", "postmark", "aws-ses"):
            # Where the provider's event webhook goes: at the root, unguessable, the same each time.
            events_url = created.pop("eventsUrl")
            assert events_url.startswith(f"{client.base_url}/inbound/{created['id']}/")
            assert len(events_url.rsplit("/", 1)[1]) == 32
        assert {k: v for k, v in created.items() if k not in common} == shown
        if secret is not None:
            assert secret not in response.text

    @pytest.mark.parametrize(("type_", "body", "secret", "shown"), CASES, ids=IDS)
    async def test_a_body_without_type_takes_the_paths(
        self,
        client: httpx.AsyncClient,
        type_: str,
        body: dict[str, Any],
        secret: str | None,
        shown: dict[str, Any],
    ) -> None:
        response = await client.post(f"/service-credentials/{type_}", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["type"] == type_

    async def test_a_type_other_than_the_paths_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/service-credentials/postmark", json={"type": "sendgrid", "apiKey": "k"}
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "type"

    @pytest.mark.parametrize(
        ("type_", "body", "field"),
        [
            ("sendgrid", {}, "apiKey"),
            ("sendgrid", {"apiKey": ""}, "apiKey"),
            ("mailgun", {"emailFrom": "a@example.com", "apiKey": "k"}, "domain"),
            ("mailgun", {**MAILGUN, "domain": "bad domain"}, "domain"),
            ("mailgun", {**MAILGUN, "emailFrom": "nope"}, "emailFrom"),
            ("mailgun", {**MAILGUN, "region": "asia"}, "region"),
            ("postmark", {}, "serverApiToken"),
            ("sendgrid", {"apiKey": "SG.key\r\nX-Evil: 1"}, "apiKey"),
            ("sendgrid", {"apiKey": "SG.key\x00"}, "apiKey"),
            ("postmark", {"serverApiToken": "token\t"}, "serverApiToken"),
            ("aws-ses", {"key": AWS_KEY, "secret": "s\x1b[2J", "region": "us-east-1"}, "secret"),
            ("aws-ses", {"key": AWS_KEY, "secret": "s", "region": "mars-1"}, "region"),
            ("aws-ses", {"key": "short", "secret": "s", "region": "us-east-1"}, "key"),
            ("aws-ses", {"key": AWS_KEY, "region": "us-east-1"}, "secret"),
            ("simulator", {"maxSendRate": 0}, "maxSendRate"),
            ("simulator", {"maxSendRate": -3}, "maxSendRate"),
        ],
    )  # fmt: skip
    async def test_an_invalid_field_is_422_naming_it(
        self, client: httpx.AsyncClient, type_: str, body: dict[str, Any], field: str
    ) -> None:
        response = await client.post(f"/service-credentials/{type_}", json=body)
        assert response.status_code == 422, response.text
        assert field in [f["field"] for f in response.json()["invalidFields"]]

    async def test_an_unsupported_type_is_404_on_post_too(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/service-credentials/paypal", json={"type": "paypal"})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_max_send_rate_is_kept(self, client: httpx.AsyncClient) -> None:
        created = await create(client, "sendgrid", {"apiKey": "k", "maxSendRate": 12.5})
        assert created["maxSendRate"] == 12.5


class TestSecrets:
    @pytest.mark.parametrize(("type_", "body", "secret", "shown"), CASES, ids=IDS)
    async def test_get_and_list_never_show_the_secret(
        self,
        client: httpx.AsyncClient,
        type_: str,
        body: dict[str, Any],
        secret: str | None,
        shown: dict[str, Any],
    ) -> None:
        created = await create(client, type_, body)
        one = await client.get(f"/service-credentials/{type_}/{created['id']}")
        many = await client.get(f"/service-credentials/{type_}")
        assert one.status_code == many.status_code == 200
        assert one.json() == created
        assert created["id"] in [c["id"] for c in many.json()]
        if secret is not None:
            assert secret not in one.text and secret not in many.text

    @pytest.mark.parametrize(("type_", "body", "secret", "shown"), CASES[:4], ids=IDS[:4])
    async def test_the_database_holds_only_ciphertext(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        type_: str,
        body: dict[str, Any],
        secret: str,
        shown: dict[str, Any],
    ) -> None:
        created = await create(client, type_, body)
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT settings, secret FROM service_credentials WHERE id = :id"),
                    {"id": created["id"]},
                )
            ).one()
        assert secret not in str(row.settings)
        assert secret not in row.secret
        assert row.secret.startswith("gAAAAA")  # a Fernet token

    async def test_a_send_through_every_provider_logs_no_secret(
        self, harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with ExitStack() as stack:
            servers = _providers(stack)
            urls = {
                "sendgrid_url": servers["sendgrid"].url,
                "mailgun_url": servers["mailgun"].url,
                "postmark_url": servers["postmark"].url,
                "ses_endpoint": servers["aws-ses"].url,
            }
            async with harness_factory(providers=urls) as h:
                for type_, body, _, _ in CASES:
                    credential = await create(h.client, type_, body)
                    await make_message(h.client, status="outbox", credentialHash=credential["id"])
                await h.deliver()
                for type_, server in servers.items():
                    assert len(server.received) == 1, type_
                sent = await h.client.get("/email-messages", params={"filter": "status:sent"})
                assert sent.headers["pagination-total"] == str(len(CASES))
        formatter = JsonFormatter()
        logged = "\n".join(formatter.format(record) for record in caplog.records)
        assert "delivery attempt" in logged
        for secret in SECRETS:
            assert secret not in logged


def _providers(stack: ExitStack) -> dict[str, Any]:
    return {
        "sendgrid": stack.enter_context(serving(SendGridServer(SENDGRID_KEY))),
        "mailgun": stack.enter_context(serving(MailgunServer(MAILGUN_KEY, "mg.example.com"))),
        "postmark": stack.enter_context(serving(PostmarkServer(POSTMARK_TOKEN))),
        "aws-ses": stack.enter_context(serving(SesServer(AWS_KEY, AWS_SECRET, "us-west-2"))),
    }


class TestStatus:
    @pytest.mark.parametrize(("type_", "body", "secret", "shown"), CASES, ids=IDS)
    async def test_every_type_can_be_made_inactive_and_deactivated(
        self,
        client: httpx.AsyncClient,
        type_: str,
        body: dict[str, Any],
        secret: str | None,
        shown: dict[str, Any],
    ) -> None:
        created = await create(client, type_, body)
        url = f"/service-credentials/{type_}/{created['id']}"
        assert (await client.patch(url, json={"status": "inactive"})).json()["status"] == "inactive"
        deactivated = await client.patch(url, json={"status": "deactivated", "type": type_})
        assert deactivated.json()["deactivationTime"] is not None
        again = await client.patch(url, json={"status": "active"})
        assert again.status_code == 422
        assert [f["field"] for f in again.json()["invalidFields"]] == ["status"]

    async def test_a_patch_with_nothing_to_change_is_422(self, client: httpx.AsyncClient) -> None:
        created = await create(client, "simulator", {})
        response = await client.patch(f"/service-credentials/simulator/{created['id']}", json={})
        assert response.status_code == 422
        assert "at least one field" in response.json()["detail"]

    async def test_another_types_path_does_not_find_it(self, client: httpx.AsyncClient) -> None:
        created = await create(client, "postmark", {"serverApiToken": "t"})
        response = await client.get(f"/service-credentials/sendgrid/{created['id']}")
        assert response.status_code == 404
