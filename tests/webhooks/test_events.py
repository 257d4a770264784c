"""Events written when the real worker records outcomes from a real SMTP server on loopback:
one event per transition, one pending delivery per matching active webhook of the message's
own organization, in the transaction of the outcome."""

from typing import Any

import httpx
from sqlalchemy import select

from postroom.webhooks.models import WebhookDelivery, WebhookEvent
from tests.factories import make_message, make_org
from tests.harness import Harness, HarnessFactory
from tests.servers.smtp import smtp_server
from tests.webhooks.test_api import make_webhook


def _smtp_url(port: int) -> str:
    return f"smtp://127.0.0.1:{port}"


async def _events(h: Harness) -> list[WebhookEvent]:
    async with h.sessionmaker() as session:
        found = await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        return list(found.all())


async def _deliveries(h: Harness) -> list[WebhookDelivery]:
    async with h.sessionmaker() as session:
        found = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return list(found.all())


def _types(events: list[WebhookEvent]) -> list[str]:
    return [e.type for e in events]


class TestTransitions:
    async def test_sent_carries_the_message_as_get_returns_it_and_the_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                hook = await make_webhook(h.client, eventsFilter=[])
                created = await make_message(h.client, status="outbox")
                await h.deliver()
                [event] = await _events(h)
                assert event.type == "email-message-sent"
                assert event.entity_id == created["id"]
                payload: dict[str, Any] = event.payload
                assert payload["id"] == event.id
                assert payload["type"] == "email-message-sent"
                message = await h.message(created["id"])
                wire = payload["data"]["emailMessage"]
                assert {k: v for k, v in wire.items() if k != "_links"} == {
                    k: v for k, v in message.items() if k != "_links"
                }
                assert wire["_links"][0]["href"] == f"/email-messages/{created['id']}"
                [attempt] = await h.attempts(created["id"])
                assert payload["data"]["attempt"] == attempt
                [delivery] = await _deliveries(h)
                assert delivery.webhook_id == hook["id"]
                assert delivery.event_id == event.id
                assert delivery.status == "pending"
                assert delivery.attempt_count == 0
                assert delivery.id.startswith("msg_")

    async def test_a_permanent_failure_is_email_message_failed(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                await make_webhook(h.client, eventsFilter=[])
                smtp.script("550 5.7.1 Message rejected as spam")
                await make_message(h.client, status="outbox")
                await h.deliver()
                [event] = await _events(h)
                assert event.type == "email-message-failed"
                assert event.payload["data"]["emailMessage"]["status"] == "failed"
                assert event.payload["data"]["attempt"]["outcome"] == "permanent"

    async def test_transient_failures_then_success(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                await make_webhook(h.client, eventsFilter=[])
                smtp.script("451 4.3.0 Temporary failure")
                await make_message(h.client, status="outbox")
                await h.deliver()
                await h.retry_all()
                events = await _events(h)
                assert _types(events) == ["email-message-attempt-failed", "email-message-sent"]
                first = events[0].payload["data"]
                assert first["emailMessage"]["status"] == "outbox"
                assert first["attempt"]["outcome"] == "transient"
                assert first["attempt"]["number"] == 1
                assert events[1].payload["data"]["attempt"]["number"] == 2

    async def test_a_timeout_after_data_is_outcome_unknown(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server(hold_data_seconds=3) as smtp:
            async with harness_factory(
                smtp_url=_smtp_url(smtp.port), smtp_data_end_timeout_seconds=0.5
            ) as h:
                await make_webhook(h.client, eventsFilter=[])
                await make_message(h.client, status="outbox")
                await h.deliver()
                [event] = await _events(h)
                assert event.type == "email-message-outcome-unknown"
                assert event.payload["data"]["attempt"]["outcome"] == "unknown"

    async def test_a_message_failed_before_any_attempt_has_no_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory() as h:
                await make_webhook(h.client, eventsFilter=[])
                credential = (
                    await h.client.post(
                        "/service-credentials/smtp", json={"host": "127.0.0.1", "port": smtp.port}
                    )
                ).json()
                await make_message(h.client, status="outbox", credentialHash=credential["id"])
                await h.client.patch(
                    f"/service-credentials/smtp/{credential['id']}", json={"status": "inactive"}
                )
                await h.deliver()
                [event] = await _events(h)
                assert event.type == "email-message-failed"
                assert event.payload["data"]["emailMessage"]["status"] == "failed"
                assert "attempt" not in event.payload["data"]


class TestMatching:
    async def test_events_filter_and_filter_choose_the_webhooks(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                only_failed = await make_webhook(h.client, eventsFilter=["email-message-failed"])
                everything = await make_webhook(h.client, eventsFilter=[])
                by_subject = await make_webhook(
                    h.client, eventsFilter=[], filter="from:other@example.com"
                )
                sent_to_sender = await make_webhook(
                    h.client, eventsFilter=["email-message-sent"], filter="from:sender@example.com"
                )
                await make_message(h.client, status="outbox")
                await h.deliver()
                [event] = await _events(h)
                assert event.type == "email-message-sent"
                hooks = {d.webhook_id for d in await _deliveries(h)}
                assert hooks == {everything["id"], sent_to_sender["id"]}
                assert only_failed["id"] not in hooks
                assert by_subject["id"] not in hooks

    async def test_no_event_when_nothing_wants_it(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                await make_webhook(h.client, eventsFilter=["email-message-failed"])
                await make_message(h.client, status="outbox")
                await h.deliver()
                assert await _events(h) == []
                assert await _deliveries(h) == []

    async def test_inactive_webhooks_and_other_organizations_get_nothing(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                other = await make_org(h.sessionmaker)
                async with httpx.AsyncClient(
                    base_url=str(h.client.base_url), headers={"REB-APIKEY": other.api_key}
                ) as theirs:
                    their_hook = await make_webhook(theirs, eventsFilter=[])
                    their_message = await make_message(theirs, status="outbox")
                await make_webhook(h.client, eventsFilter=[], status="inactive")
                mine = await make_message(h.client, status="outbox")
                await h.deliver()
                events = await _events(h)
                assert [e.entity_id for e in events] == [their_message["id"]]
                assert mine["id"] not in {e.entity_id for e in events}
                assert {d.webhook_id for d in await _deliveries(h)} == {their_hook["id"]}


class TestDeletion:
    async def test_deleting_a_webhook_takes_its_pending_deliveries_with_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                hook = await make_webhook(h.client, eventsFilter=[])
                await make_message(h.client, status="outbox")
                await h.deliver()
                assert len(await _deliveries(h)) == 1
                assert (await h.client.delete(f"/webhooks/{hook['id']}")).status_code == 204
                assert await _deliveries(h) == []
                assert len(await _events(h)) == 1  # the event stays: other webhooks may have it
