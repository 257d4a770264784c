"""HTTP tests of senders/router.py (/email-delivery-settings) and of how a message that names no
credential uses the organization's default setting, through to the worker."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.senders import service as senders
from tests.factories import make_message, message_body
from tests.harness import HarnessFactory
from tests.servers.esp import PostmarkServer, serving
from tests.servers.smtp import smtp_server

TOKEN = "postmark-token"


async def create_setting(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A new setting; verified on the operator's word when `verify=` gives the database."""
    verify: async_sessionmaker[AsyncSession] | None = overrides.pop("verify", None)
    body = {"from": "billing@example.com", "name": "Acme Billing", **overrides}
    response = await client.post("/email-delivery-settings", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    if verify is not None:
        async with verify() as session, session.begin():
            await senders.verify_as_operator(session, created["id"], SystemClock().now())
        created = (await client.get(f"/email-delivery-settings/{created['id']}")).json()
        assert created["status"] == "verified"
    return created


async def simulator(client: httpx.AsyncClient) -> str:
    response = await client.post("/service-credentials/simulator", json={})
    credential_id: str = response.json()["id"]
    return credential_id


class TestCreate:
    async def test_create_returns_the_setting_with_every_field(
        self, client: httpx.AsyncClient
    ) -> None:
        credential_id = await simulator(client)
        response = await client.post(
            "/email-delivery-settings",
            json={
                "from": "billing@example.com",
                "name": "Acme Billing",
                "credentialId": credential_id,
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == body["_links"][0]["href"]
        assert body["id"].startswith("mail_dst_")
        assert body["from"] == "billing@example.com"
        assert body["name"] == "Acme Billing"
        assert body["status"] == "pending"
        assert body["credentialId"] == credential_id
        assert body["provider"] == "simulator"
        assert body["isDefault"] is False
        assert body["createdTime"] and body["updatedTime"]

    async def test_without_a_credential_the_provider_is_the_server_default(
        self, client: httpx.AsyncClient
    ) -> None:
        assert (await create_setting(client))["provider"] == "rebilly"

    async def test_an_address_is_unique_in_the_organization_whatever_its_case(
        self, client: httpx.AsyncClient
    ) -> None:
        await create_setting(client)
        response = await client.post(
            "/email-delivery-settings", json={"from": "Billing@EXAMPLE.com", "name": "Again"}
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "from"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "No address"}, "from"),
            ({"from": "not-an-address", "name": "x"}, "from"),
            ({"from": "a@example.com"}, "name"),
            ({"from": "a@example.com", "name": ""}, "name"),
            ({"from": "a@example.com", "name": "Evil\r\nBcc: x@example.com"}, "name"),
            ({"from": "a@example.com", "name": "Red \x1b[31mAlert"}, "name"),
            ({"from": "a@example.com", "name": "Nul\x00"}, "name"),
            ({"from": "a@example.com", "name": "x", "credentialId": "crd_nope"}, "credentialId"),
            ({"from": "a@example.com", "name": "x", "status": "approved"}, "status"),
        ],
    )
    async def test_an_invalid_field_is_422_naming_it(
        self, client: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        response = await client.post("/email-delivery-settings", json=body)
        assert response.status_code == 422
        assert field in [f["field"] for f in response.json()["invalidFields"]]

    async def test_a_deactivated_credential_cannot_be_named(
        self, client: httpx.AsyncClient
    ) -> None:
        credential_id = await simulator(client)
        await client.patch(
            f"/service-credentials/simulator/{credential_id}", json={"status": "deactivated"}
        )
        response = await client.post(
            "/email-delivery-settings",
            json={"from": "a@example.com", "name": "x", "credentialId": credential_id},
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "credentialId"


class TestDefault:
    async def test_a_new_default_unsets_the_old_one(self, client: httpx.AsyncClient) -> None:
        first = await create_setting(client, isDefault=True)
        second = await create_setting(client, **{"from": "support@example.com"}, isDefault=True)
        assert second["isDefault"] is True
        again = (await client.get(f"/email-delivery-settings/{first['id']}")).json()
        assert again["isDefault"] is False

    async def test_patching_is_default_moves_it(self, client: httpx.AsyncClient) -> None:
        first = await create_setting(client, isDefault=True)
        second = await create_setting(client, **{"from": "support@example.com"})
        patched = await client.patch(
            f"/email-delivery-settings/{second['id']}", json={"isDefault": True}
        )
        assert patched.json()["isDefault"] is True
        listed = (await client.get("/email-delivery-settings")).json()
        assert {s["id"]: s["isDefault"] for s in listed} == {first["id"]: False, second["id"]: True}

    async def test_the_default_cannot_be_deleted_another_can(
        self, client: httpx.AsyncClient
    ) -> None:
        default = await create_setting(client, isDefault=True)
        other = await create_setting(client, **{"from": "support@example.com"})
        refused = await client.delete(f"/email-delivery-settings/{default['id']}")
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await client.delete(f"/email-delivery-settings/{other['id']}")).status_code == 204
        assert (await client.get(f"/email-delivery-settings/{other['id']}")).status_code == 404
        await client.patch(f"/email-delivery-settings/{default['id']}", json={"isDefault": False})
        assert (await client.delete(f"/email-delivery-settings/{default['id']}")).status_code == 204


class TestUpdate:
    async def test_status_is_read_only_and_a_new_address_is_pending_again(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        created = await create_setting(client)
        url = f"/email-delivery-settings/{created['id']}"
        refused = await client.patch(url, json={"status": "verified"})
        assert refused.status_code == 422
        assert refused.json()["invalidFields"][0]["field"] == "status"
        assert (await client.get(url)).json()["status"] == "pending"
        # Sending back what was read is not a change.
        assert (await client.patch(url, json={"status": "pending"})).status_code == 200
        await create_setting(client, verify=sessionmaker, **{"from": "ops@example.com"})
        verified = (await client.get("/email-delivery-settings", params={"q": "ops@"})).json()[0]
        renamed = await client.patch(
            f"/email-delivery-settings/{verified['id']}", json={"name": "Acme Invoices"}
        )
        assert (renamed.json()["name"], renamed.json()["status"]) == ("Acme Invoices", "verified")
        moved = await client.patch(
            f"/email-delivery-settings/{verified['id']}", json={"from": "invoices@example.com"}
        )
        assert (moved.json()["from"], moved.json()["status"]) == ("invoices@example.com", "pending")
        unverify = await client.patch(url, json={"status": "pending", "name": "x"})
        assert unverify.status_code == 200

    async def test_a_new_setting_cannot_be_created_verified(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/email-delivery-settings",
            json={"from": "a@example.com", "name": "x", "status": "verified"},
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "status"

    async def test_the_credential_can_be_set_and_cleared(self, client: httpx.AsyncClient) -> None:
        created = await create_setting(client)
        url = f"/email-delivery-settings/{created['id']}"
        credential_id = await simulator(client)
        assert (await client.patch(url, json={"credentialId": credential_id})).json()[
            "provider"
        ] == "simulator"
        cleared = await client.patch(url, json={"credentialId": None})
        assert (cleared.json()["credentialId"], cleared.json()["provider"]) == (None, "rebilly")


class TestListing:
    async def test_filter_by_status_and_search_by_name(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        pending = await create_setting(client)
        verified = await create_setting(
            client, verify=sessionmaker, **{"from": "support@example.com", "name": "Help Desk"}
        )
        by_status = await client.get(
            "/email-delivery-settings", params={"filter": "status:verified"}
        )
        assert [s["id"] for s in by_status.json()] == [verified["id"]]
        assert by_status.headers["pagination-total"] == "1"
        searched = await client.get("/email-delivery-settings", params={"q": "acme"})
        assert [s["id"] for s in searched.json()] == [pending["id"]]


class TestScope:
    async def test_another_organizations_setting_is_404(
        self,
        client: httpx.AsyncClient,
        anonymous: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        created = await create_setting(client)
        async with sessionmaker() as session, session.begin():
            other = await auth.create_organization(session, "other", SystemClock().now())
        headers = {"REB-APIKEY": other.api_key}
        url = f"/email-delivery-settings/{created['id']}"
        assert (await anonymous.get(url, headers=headers)).status_code == 404
        assert (await anonymous.delete(url, headers=headers)).status_code == 404
        listed = await anonymous.get("/email-delivery-settings", headers=headers)
        assert listed.json() == []


class TestMessagesUseTheDefault:
    async def test_without_a_default_any_from_is_accepted(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await create_setting(client, verify=sessionmaker)  # not the default
        await make_message(client, **{"from": "anyone@example.com"})

    async def test_a_from_other_than_the_defaults_is_422_naming_from(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await create_setting(client, verify=sessionmaker, isDefault=True)
        response = await client.post(
            "/email-messages", json=message_body(**{"from": "someone@example.com"})
        )
        assert response.status_code == 422
        [problem] = response.json()["invalidFields"]
        assert problem["field"] == "from"
        assert "billing@example.com" in problem["message"]

    async def test_the_defaults_address_in_any_case_is_accepted(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await create_setting(client, verify=sessionmaker, isDefault=True)
        await make_message(client, **{"from": "BILLING@example.com"})

    async def test_an_unverified_default_is_422_naming_from(
        self, client: httpx.AsyncClient
    ) -> None:
        await create_setting(client, isDefault=True)
        response = await client.post(
            "/email-messages", json=message_body(**{"from": "billing@example.com"})
        )
        assert response.status_code == 422
        assert "not verified" in response.json()["invalidFields"][0]["message"]

    async def test_a_message_naming_a_credential_is_not_held_to_the_default(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await create_setting(client, verify=sessionmaker, isDefault=True)
        credential_id = await simulator(client)
        await make_message(client, **{"from": "other@example.com"}, credentialHash=credential_id)

    async def test_a_draft_is_checked_again_when_it_is_sent(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        draft = await make_message(client, **{"from": "someone@example.com"})
        await create_setting(client, verify=sessionmaker, isDefault=True)
        response = await client.patch(f"/email-messages/{draft['id']}", json={"status": "outbox"})
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "from"
        assert (await client.get(f"/email-messages/{draft['id']}")).json()["status"] == "draft"


@pytest.fixture
def postmark() -> Iterator[PostmarkServer]:
    with serving(PostmarkServer(TOKEN)) as server:
        yield server


class TestDelivery:
    async def test_a_message_with_no_credential_goes_through_the_defaults_credential_and_name(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            credential = (
                await h.client.post("/service-credentials/postmark", json={"serverApiToken": TOKEN})
            ).json()
            await create_setting(
                h.client, credentialId=credential["id"], verify=h.sessionmaker, isDefault=True
            )
            created = await make_message(
                h.client, status="outbox", **{"from": "billing@example.com"}
            )
            assert created["credentialHash"] is None  # the client named none
            await h.deliver()
            [request] = postmark.received
            assert request.json["From"] == "Acme Billing <billing@example.com>"
            record = await h.message(created["id"])
            assert (record["status"], record["credentialHash"]) == ("sent", None)
            [attempt] = await h.attempts(created["id"])
            assert (attempt["transport"], attempt["credentialHash"]) == (
                "postmark",
                credential["id"],
            )

    async def test_a_default_without_a_credential_uses_the_server_transport_with_its_name(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            await create_setting(h.client, verify=h.sessionmaker, isDefault=True, name="Acme, Inc.")
            created = await make_message(
                h.client, status="outbox", **{"from": "billing@example.com"}
            )
            await h.deliver()
            eml = (h.settings.data_dir / "outbox" / f"{created['id']}.eml").read_text()
            assert 'From: "Acme, Inc." <billing@example.com>' in eml
            [attempt] = await h.attempts(created["id"])
            assert (attempt["transport"], attempt["credentialHash"]) == ("eml", None)

    async def test_a_name_with_a_comma_arrives_as_one_address(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory() as h:
                credential = await h.client.post(
                    "/service-credentials/smtp", json={"host": "127.0.0.1", "port": smtp.port}
                )
                await create_setting(
                    h.client,
                    credentialId=credential.json()["id"],
                    verify=h.sessionmaker,
                    isDefault=True,
                    name="Zoë's Shop, Inc.",
                )
                created = await make_message(
                    h.client, status="outbox", **{"from": "billing@example.com"}
                )
                await h.deliver()
                assert (await h.message(created["id"]))["status"] == "sent"
        [received] = smtp.received
        [sender] = received.message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (
            "Zoë's Shop, Inc.",
            "billing@example.com",
        )

    async def test_a_queued_message_keeps_the_setting_it_was_queued_with(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            credential = (
                await h.client.post("/service-credentials/postmark", json={"serverApiToken": TOKEN})
            ).json()
            first = await create_setting(
                h.client, credentialId=credential["id"], verify=h.sessionmaker, isDefault=True
            )
            created = await make_message(
                h.client, status="outbox", **{"from": "billing@example.com"}
            )
            # The default moves before the worker runs: the queued message is not re-routed.
            await create_setting(
                h.client, **{"from": "support@example.com"}, verify=h.sessionmaker, isDefault=True
            )
            assert (await h.client.get(f"/email-delivery-settings/{first['id']}")).json()[
                "isDefault"
            ] is False
            h.clock.advance(timedelta(seconds=1))
            await h.deliver()
            assert len(postmark.received) == 1
            assert (await h.message(created["id"]))["status"] == "sent"

    async def test_an_inactive_default_credential_fails_the_message_clearly(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential_id = await simulator(h.client)
            await create_setting(
                h.client, credentialId=credential_id, verify=h.sessionmaker, isDefault=True
            )
            created = await make_message(
                h.client, status="outbox", **{"from": "billing@example.com"}
            )
            await h.client.patch(
                f"/service-credentials/simulator/{credential_id}", json={"status": "inactive"}
            )
            await h.deliver()
            record = await h.message(created["id"])
            assert record["status"] == "failed"
            assert (
                record["responseBody"]
                == f"credential {credential_id} is inactive; nothing was sent"
            )
