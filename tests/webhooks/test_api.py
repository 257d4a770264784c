"""/webhooks and /tracking/webhooks through the API: CRUD, validation problems naming the
field, isolation between organizations, secrets shown once."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from postroom.core.ids import new_id
from postroom.webhooks.models import (
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookTracking,
)
from tests.factories import make_org
from tests.harness import Harness, HarnessFactory

URL = "http://127.0.0.1:9/hooks"


async def make_webhook(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"method": "POST", "url": URL, "eventsFilter": ["email-message-sent"], **overrides}
    response = await client.post("/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _field(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [p["field"] for p in response.json()["invalidFields"]]


class TestCrud:
    async def test_create_answers_201_with_location_and_the_secret_once(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            response = await h.client.post(
                "/webhooks",
                json={
                    "method": "POST",
                    "url": URL,
                    "eventsFilter": ["email-message-sent", "email-message-failed"],
                    "headers": [{"name": "X-Tenant", "value": "acme"}],
                    "filter": "status:sent",
                },
            )
            assert response.status_code == 201, response.text
            created = response.json()
            assert created["id"].startswith("wh_")
            assert created["secret"].startswith("whsec_")
            assert response.headers["Location"].endswith(f"/webhooks/{created['id']}")
            assert created["status"] == "active"
            assert created["headers"] == [{"name": "X-Tenant", "value": "acme", "status": "active"}]
            assert created["credentialHash"] is None

            got = await h.client.get(f"/webhooks/{created['id']}")
            assert got.status_code == 200
            assert "secret" not in got.json()
            assert created["secret"] not in got.text
            listed = await h.client.get("/webhooks")
            assert listed.headers["Pagination-Total"] == "1"
            assert [w["id"] for w in listed.json()] == [created["id"]]
            assert created["secret"] not in listed.text

    async def test_put_replaces_patch_changes_some_delete_removes(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_webhook(h.client, filter="status:sent")
            put = await h.client.put(
                f"/webhooks/{created['id']}",
                json={"method": "PUT", "url": "http://127.0.0.1:9/other"},
            )
            assert put.status_code == 200, put.text
            assert put.json()["method"] == "PUT"
            assert put.json()["eventsFilter"] == []
            assert put.json()["filter"] is None
            patched = await h.client.patch(
                f"/webhooks/{created['id']}", json={"status": "inactive"}
            )
            assert patched.status_code == 200, patched.text
            assert patched.json()["status"] == "inactive"
            assert patched.json()["inactiveReason"] == "deactivated"
            assert patched.json()["url"] == "http://127.0.0.1:9/other"
            again = await h.client.patch(f"/webhooks/{created['id']}", json={"status": "active"})
            assert again.json()["inactiveReason"] is None
            assert (await h.client.delete(f"/webhooks/{created['id']}")).status_code == 204
            assert (await h.client.get(f"/webhooks/{created['id']}")).status_code == 404

    async def test_put_of_a_new_id_creates_it_with_its_secret(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            body = {"method": "POST", "url": URL}
            created = await h.client.put("/webhooks/my-hook-1", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["id"] == "my-hook-1"
            assert created.json()["secret"].startswith("whsec_")
            assert created.headers["Location"].endswith("/webhooks/my-hook-1")
            again = await h.client.put("/webhooks/my-hook-1", json={**body, "method": "PUT"})
            assert again.status_code == 200, again.text
            assert "secret" not in again.json()
            assert again.json()["method"] == "PUT"
            bad = await h.client.put("/webhooks/bad id!", json=body)
            assert bad.status_code == 422

    async def test_list_filters_sorts_and_pages(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            first = await make_webhook(h.client)
            second = await make_webhook(h.client, status="inactive")
            active = await h.client.get("/webhooks", params={"filter": "status:active"})
            assert [w["id"] for w in active.json()] == [first["id"]]
            ordered = await h.client.get("/webhooks", params={"sort": "id", "limit": 1})
            assert [w["id"] for w in ordered.json()] == [first["id"]]
            assert ordered.headers["Pagination-Total"] == "2"
            desc = await h.client.get("/webhooks", params={"sort": "-id"})
            assert [w["id"] for w in desc.json()] == [second["id"], first["id"]]
            bad = await h.client.get("/webhooks", params={"sort": "secret"})
            assert bad.status_code == 422

    async def test_rotating_gives_a_new_secret_and_keeps_the_old_for_the_overlap(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_webhook(h.client)
            rotated = await h.client.post(f"/webhooks/{created['id']}/rotate-secret")
            assert rotated.status_code == 200, rotated.text
            body = rotated.json()
            assert body["secret"].startswith("whsec_")
            assert body["secret"] != created["secret"]
            assert body["previousSecretUntil"] is not None

    async def test_an_organization_has_at_most_the_configured_number(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            h.settings.webhooks.max_per_organization = 2
            await make_webhook(h.client)
            await make_webhook(h.client)
            response = await h.client.post("/webhooks", json={"method": "POST", "url": URL})
            assert response.status_code == 409, response.text


class TestValidation:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"url": "ftp://127.0.0.1/x"}, "url"),
            ({"url": "not a url"}, "url"),
            ({"url": "http://10.1.2.3/hook"}, "url"),
            ({"url": "http://[::1]:8080/hook"}, "url"),
            ({"eventsFilter": ["transaction-processed"]}, "eventsFilter"),
            ({"filter": "nosuchfield:1"}, "filter"),
            ({"filter": "status:bogus"}, "filter"),
            ({"method": "TRACE"}, "method"),
            ({"status": "paused"}, "status"),
            ({"credentialHash": "crd_missing"}, "credentialHash"),
            ({"headers": [{"name": "Bad Name", "value": "x"}]}, "headers"),
            ({"headers": [{"name": "Webhook-Signature", "value": "v1,x"}]}, "headers"),
            ({"headers": [{"name": "Content-Type", "value": "text/plain"}]}, "headers"),
        ],
    )
    async def test_bad_input_is_422_naming_the_field(
        self, harness_factory: HarnessFactory, overrides: dict[str, Any], field: str
    ) -> None:
        async with harness_factory() as h:
            body = {"method": "POST", "url": URL, **overrides}
            response = await h.client.post("/webhooks", json=body)
            assert any(f == field or f.startswith(f"{field}.") for f in _field(response)), (
                response.text
            )

    async def test_a_private_url_is_refused_unless_the_policy_allows_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(destinations="") as h:
            response = await h.client.post("/webhooks", json={"method": "POST", "url": URL})
            assert _field(response) == ["url"]
            assert "POSTROOM_DESTINATIONS__ALLOW" in response.text

    async def test_an_smtp_credential_is_not_a_webhook_credential(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            smtp = await h.client.post(
                "/service-credentials/smtp", json={"host": "127.0.0.1", "port": 25}
            )
            assert smtp.status_code == 201, smtp.text
            response = await h.client.post(
                "/webhooks",
                json={"method": "POST", "url": URL, "credentialHash": smtp.json()["id"]},
            )
            assert _field(response) == ["credentialHash"]


class TestIsolation:
    async def test_another_organizations_webhooks_are_404_and_never_listed(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            other = await make_org(h.sessionmaker)
            async with httpx.AsyncClient(
                base_url=str(h.client.base_url), headers={"REB-APIKEY": other.api_key}
            ) as theirs:
                their_hook = await make_webhook(theirs)
            mine = await make_webhook(h.client)
            for method in ("GET", "DELETE", "PATCH"):
                kwargs: dict[str, Any] = (
                    {"json": {"status": "inactive"}} if method == "PATCH" else {}
                )
                response = await h.client.request(method, f"/webhooks/{their_hook['id']}", **kwargs)
                assert response.status_code == 404, (method, response.text)
            put = await h.client.put(
                f"/webhooks/{their_hook['id']}", json={"method": "POST", "url": URL}
            )
            assert put.status_code == 409  # their id is taken: neither replaced nor shown
            rotate = await h.client.post(f"/webhooks/{their_hook['id']}/rotate-secret")
            assert rotate.status_code == 404
            listed = await h.client.get("/webhooks")
            assert [w["id"] for w in listed.json()] == [mine["id"]]


async def _tracking_row(h: Harness, webhook_id: str, organization_id: str, **values: Any) -> str:
    """A tracking row as the dispatcher writes one, with its event and delivery."""
    now = h.clock.now()
    event_id, delivery_id, tracking_id = new_id("evt_"), new_id("msg_"), new_id("hook_log_")
    async with h.sessionmaker() as session, session.begin():
        session.add(
            WebhookEvent(
                id=event_id,
                organization_id=organization_id,
                type="email-message-sent",
                entity_id="mail_msg_1",
                payload={"id": event_id},
                created_time=now,
            )
        )
        await session.flush()
        session.add(
            WebhookDelivery(
                id=delivery_id,
                organization_id=organization_id,
                webhook_id=webhook_id,
                event_id=event_id,
                status=DeliveryStatus.SUCCEEDED,
                attempt_count=1,
                due_at=now,
                lease_token="t",
                leased_until=now,
                created_time=now,
                updated_time=now,
            )
        )
        await session.flush()
        session.add(
            WebhookTracking(
                **{
                    "id": tracking_id,
                    "organization_id": organization_id,
                    "delivery_id": delivery_id,
                    "webhook_id": webhook_id,
                    "entity_id": "mail_msg_1",
                    "event_type": "email-message-sent",
                    "attempt": 1,
                    "url": URL,
                    "method": "POST",
                    "request": "{}",
                    "request_headers": {"content-type": "application/json"},
                    "status": 200,
                    "response": "ok",
                    "response_headers": {},
                    "error": None,
                    "duration": 12,
                    "initiated_time": now,
                    "sent_time": now,
                    "created_time": now,
                    "updated_time": now,
                    **values,
                }
            )
        )
    return tracking_id


async def _organization_of(h: Harness, webhook_id: str) -> str:
    async with h.sessionmaker() as session:
        organization_id = await session.scalar(
            select(Webhook.organization_id).where(Webhook.id == webhook_id)
        )
    assert organization_id is not None
    return organization_id


class TestTracking:
    async def test_list_get_and_resend(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            hook = await make_webhook(h.client)
            organization_id = await _organization_of(h, hook["id"])
            ok = await _tracking_row(h, hook["id"], organization_id)
            failed = await _tracking_row(h, hook["id"], organization_id, status=500, duration=30)

            listed = await h.client.get("/tracking/webhooks", params={"sort": "-duration"})
            assert listed.status_code == 200, listed.text
            assert [t["id"] for t in listed.json()] == [failed, ok]
            assert listed.headers["Pagination-Total"] == "2"
            only = await h.client.get("/tracking/webhooks", params={"filter": "status:500"})
            assert [t["id"] for t in only.json()] == [failed]
            got = (await h.client.get(f"/tracking/webhooks/{ok}")).json()
            assert got["status"] == 200
            assert got["eventType"] == "email-message-sent"
            assert got["entityId"] == "mail_msg_1"
            assert got["organizationId"] == organization_id
            assert got["requestHeaders"] == {"content-type": "application/json"}

            resent = await h.client.post(f"/tracking/webhooks/{ok}/resend")
            assert resent.status_code == 204, resent.text
            async with h.sessionmaker() as session:
                deliveries = (await session.scalars(select(WebhookDelivery))).all()
            pending = [d for d in deliveries if d.status == DeliveryStatus.PENDING]
            assert len(pending) == 1
            assert pending[0].lease_token is None
            assert pending[0].leased_until is None
            assert pending[0].attempt_count == 1  # same delivery, same webhook-id

    async def test_another_organizations_tracking_is_404(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            other = await make_org(h.sessionmaker)
            async with httpx.AsyncClient(
                base_url=str(h.client.base_url), headers={"REB-APIKEY": other.api_key}
            ) as theirs:
                their_hook = await make_webhook(theirs)
            row = await _tracking_row(h, their_hook["id"], other.organization_id)
            assert (await h.client.get(f"/tracking/webhooks/{row}")).status_code == 404
            assert (await h.client.post(f"/tracking/webhooks/{row}/resend")).status_code == 404
            assert (await h.client.get("/tracking/webhooks")).json() == []
