"""/service-credentials/webhook: Rebilly's WebhookCredential, secrets encrypted and never
returned, usable by webhooks only."""

import json

from sqlalchemy import select

from postroom.credentials.models import ServiceCredential
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.webhooks.test_api import make_webhook

PASSWORD = "hunter2-but-longer"


class TestWebhookCredentials:
    async def test_crud_with_the_password_hidden_and_encrypted(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            response = await h.client.post(
                "/service-credentials/webhook",
                json={
                    "host": "hooks.example.com",
                    "auth": {"type": "digest", "username": "ops", "password": PASSWORD},
                },
            )
            assert response.status_code == 201, response.text
            created = response.json()
            assert created["type"] == "webhook"
            assert created["host"] == "hooks.example.com"
            assert created["auth"] == {"type": "digest", "username": "ops"}
            assert PASSWORD not in response.text
            got = await h.client.get(f"/service-credentials/webhook/{created['id']}")
            assert got.json()["auth"] == {"type": "digest", "username": "ops"}
            listed = await h.client.get("/service-credentials/webhook")
            assert [c["id"] for c in listed.json()] == [created["id"]]
            assert PASSWORD not in got.text + listed.text
            async with h.sessionmaker() as session:
                stored = await session.scalar(
                    select(ServiceCredential).where(ServiceCredential.id == created["id"])
                )
            assert stored is not None and stored.secret is not None
            assert PASSWORD not in stored.secret
            assert PASSWORD not in str(stored.settings)
            patched = await h.client.patch(
                f"/service-credentials/webhook/{created['id']}", json={"status": "inactive"}
            )
            assert patched.json()["status"] == "inactive"

            none = await h.client.post("/service-credentials/webhook", json={"host": "127.0.0.1"})
            assert none.status_code == 201, none.text
            assert none.json()["auth"] == {"type": "none"}

    async def test_bad_input_names_the_field(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory(destinations="") as h:
            for body, field in (
                ({"host": "bad host!"}, "host"),
                ({"host": "127.0.0.1"}, "host"),
                ({"host": "a.example.com", "auth": {"type": "basic", "username": "u"}}, "auth"),
                ({"host": "a.example.com", "auth": {"type": "ntlm"}}, "auth"),
            ):
                response = await h.client.post("/service-credentials/webhook", json=body)
                assert response.status_code == 422, response.text
                fields = [p["field"] for p in response.json()["invalidFields"]]
                assert any(f == field or f.startswith(f"{field}.") for f in fields), (body, fields)

    async def test_a_webhook_takes_it_and_a_message_does_not(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential = (
                await h.client.post(
                    "/service-credentials/webhook",
                    json={
                        "host": "127.0.0.1",
                        "auth": {"type": "basic", "username": "u", "password": PASSWORD},
                    },
                )
            ).json()
            hook = await make_webhook(h.client, credentialHash=credential["id"])
            assert hook["credentialHash"] == credential["id"]
            response = await h.client.post(
                "/email-messages",
                json={
                    "from": "sender@example.com",
                    "to": ["to@example.com"],
                    "subject": "s",
                    "text": "t",
                    "html": "h",
                    "credentialHash": credential["id"],
                },
            )
            assert response.status_code == 422, response.text
            assert response.json()["invalidFields"][0]["field"] == "credentialHash"
            await make_message(h.client)  # without it, fine

    async def test_patch_changes_host_and_auth_and_keeps_an_unsent_password(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = (
                await h.client.post(
                    "/service-credentials/webhook",
                    json={
                        "host": "hooks.example.com",
                        "auth": {"type": "basic", "username": "ops", "password": PASSWORD},
                    },
                )
            ).json()
            url = f"/service-credentials/webhook/{created['id']}"

            async def stored_password() -> str:
                async with h.sessionmaker() as session:
                    credential = await session.get(ServiceCredential, created["id"])
                assert credential is not None and credential.secret is not None
                secrets: dict[str, str] = json.loads(h.worker.box.decrypt(credential.secret))
                return secrets["password"]

            moved = await h.client.patch(url, json={"host": "hooks2.example.com"})
            assert moved.status_code == 200, moved.text
            assert moved.json()["host"] == "hooks2.example.com"
            assert await stored_password() == PASSWORD
            kept = await h.client.patch(url, json={"auth": {"type": "digest", "username": "ops2"}})
            assert kept.json()["auth"] == {"type": "digest", "username": "ops2"}
            assert await stored_password() == PASSWORD
            rotated = await h.client.patch(
                url, json={"auth": {"type": "basic", "username": "ops2", "password": "new-one"}}
            )
            assert "new-one" not in rotated.text
            assert await stored_password() == "new-one"
            bad = await h.client.patch(url, json={"host": "bad host!"})
            assert bad.status_code == 422
            assert bad.json()["invalidFields"][0]["field"] == "host"
