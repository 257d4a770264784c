"""events.service.record against a real delivered message: one row per event on the message's
own organization, a retried event recorded once, a webhook per event, and the blocklist fed by
hard bounces, complaints and repeated soft bounces."""

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from postroom.blocklists.models import BlocklistEntry
from postroom.events import service
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.service import ProviderEvent, Recorded
from postroom.settings import EventSettings
from postroom.webhooks.models import WebhookEvent
from tests.factories import make_message, make_org
from tests.harness import Harness, HarnessFactory
from tests.servers.smtp import smtp_server
from tests.webhooks.test_api import make_webhook


async def _sent(h: Harness, **overrides: Any) -> str:
    created = await make_message(h.client, status="outbox", **overrides)
    await h.deliver()
    assert (await h.message(created["id"]))["status"] == "sent"
    message_id: str = created["id"]
    return message_id


async def _organization(h: Harness, message_id: str) -> str:
    from postroom.messages.models import EmailMessage

    async with h.sessionmaker() as session:
        organization_id = await session.scalar(
            select(EmailMessage.organization_id).where(EmailMessage.id == message_id)
        )
    assert organization_id is not None
    return organization_id


def _event(message_id: str | None, kind: EventKind, **values: Any) -> ProviderEvent:
    return ProviderEvent(
        kind=kind,
        source=EventSource.SENDGRID,
        occurred_at=values.pop("occurred_at", None) or _now(),
        raw=values.pop("raw", {"event": str(kind)}),
        message_id=message_id,
        **values,
    )


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 12, 4, 12, tzinfo=UTC)


async def _record(
    h: Harness, organization_id: str, *events: ProviderEvent, **settings: Any
) -> Recorded:
    async with h.sessionmaker() as session, session.begin():
        return await service.record(
            session,
            organization_id,
            events,
            now=h.clock.now(),
            settings=EventSettings(**settings),
        )


async def _blocklist(h: Harness) -> list[BlocklistEntry]:
    async with h.sessionmaker() as session:
        return list((await session.scalars(select(BlocklistEntry))).all())


async def _events_of(client: httpx.AsyncClient, message_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/email-messages/{message_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


class TestRecord:
    async def test_events_are_listed_on_their_message_and_fire_webhooks(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _sent(h)
                organization_id = await _organization(h, message_id)
                await make_webhook(
                    h.client, eventsFilter=["email-message-delivered", "email-message-bounced"]
                )
                result = await _record(
                    h,
                    organization_id,
                    _event(
                        message_id,
                        EventKind.DELIVERED,
                        recipient="To@Example.com",
                        provider_event_id="e1",
                        raw={"event": "delivered", "nul": "a\x00b"},
                    ),
                    _event(
                        message_id,
                        EventKind.BOUNCED,
                        recipient="cc@example.com",
                        bounce_type=BounceType.SOFT,
                        diagnostic="452 4.2.2 mailbox full",
                        provider_event_id="e2",
                    ),
                    _event(message_id, EventKind.DEFERRED, recipient="to@example.com"),
                )
                assert (len(result.recorded), result.unknown, result.duplicates) == (3, 0, 0)
                events = await _events_of(h.client, message_id)
                assert [e["type"] for e in events] == ["delivered", "bounced", "deferred"]
                delivered, bounced, _ = events
                assert delivered["recipient"] == "to@example.com"
                assert delivered["source"] == "sendgrid"
                assert delivered["bounceType"] is None
                assert bounced["bounceType"] == "soft"
                assert bounced["diagnostic"] == "452 4.2.2 mailbox full"
                assert delivered["raw"]["event"] == "delivered"
                async with h.sessionmaker() as session:
                    fired = (await session.scalars(select(WebhookEvent))).all()
                # Only the types the webhook asked for; the sent event it did not ask for either.
                assert sorted(e.type for e in fired) == [
                    "email-message-bounced",
                    "email-message-delivered",
                ]
                for fired_event in fired:
                    data = fired_event.payload["data"]
                    assert data["emailMessage"]["id"] == message_id
                    assert data["event"]["type"] in ("delivered", "bounced")
                    assert "attempt" not in data

    async def test_a_retried_event_is_recorded_once_and_unknown_or_foreign_ones_not_at_all(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _sent(h)
                organization_id = await _organization(h, message_id)
                other = await make_org(h.sessionmaker)
                delivered = _event(
                    message_id,
                    EventKind.DELIVERED,
                    recipient="to@example.com",
                    provider_event_id="x",
                )
                first = await _record(h, organization_id, delivered)
                again = await _record(h, organization_id, delivered)
                assert (len(first.recorded), len(again.recorded), again.duplicates) == (1, 0, 1)
                unknown = await _record(
                    h,
                    organization_id,
                    _event("mail_msg_nope", EventKind.DELIVERED),
                    _event(None, EventKind.DELIVERED, provider_message_id="nobody-knows"),
                )
                assert (len(unknown.recorded), unknown.unknown) == (0, 2)
                # The same message id, reported on another organization's endpoint: not theirs.
                foreign = await _record(
                    h, other.organization_id, _event(message_id, EventKind.COMPLAINED)
                )
                assert (len(foreign.recorded), foreign.unknown) == (0, 1)
                assert len(await _events_of(h.client, message_id)) == 1
                assert await _blocklist(h) == []

    async def test_another_organizations_message_events_are_404(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _sent(h)
                other = await make_org(h.sessionmaker)
                response = await h.client.get(
                    f"/email-messages/{message_id}/events",
                    headers={"REB-APIKEY": other.api_key},
                )
                assert response.status_code == 404
                assert response.headers["content-type"] == "application/problem+json"


class TestBlocklist:
    async def test_hard_bounces_and_complaints_blocklist_the_recipient(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _sent(h)
                organization_id = await _organization(h, message_id)
                await _record(
                    h,
                    organization_id,
                    _event(
                        message_id,
                        EventKind.BOUNCED,
                        recipient="Gone@Example.com",
                        bounce_type=BounceType.HARD,
                    ),
                    _event(message_id, EventKind.COMPLAINED, recipient="angry@example.com"),
                    _event(message_id, EventKind.DELIVERED, recipient="fine@example.com"),
                    blocklist_days=30,
                )
                entries = sorted(await _blocklist(h), key=lambda e: e.value)
                assert [(e.type, e.value, e.source, e.entity_id) for e in entries] == [
                    ("email", "angry@example.com", "automated-blocklists", message_id),
                    ("email", "gone@example.com", "automated-blocklists", message_id),
                ]
                assert all(e.expiration_time == h.clock.now() + timedelta(days=30) for e in entries)

    async def test_soft_bounces_blocklist_at_the_limit_and_the_setting_turns_it_off(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                message_id = await _sent(h)
                organization_id = await _organization(h, message_id)

                def soft(n: int) -> ProviderEvent:
                    return _event(
                        message_id,
                        EventKind.BOUNCED,
                        recipient="full@example.com",
                        bounce_type=BounceType.SOFT,
                        provider_event_id=f"soft-{n}",
                    )

                await _record(h, organization_id, soft(1), soft_bounce_limit=2)
                assert await _blocklist(h) == []
                await _record(h, organization_id, soft(2), soft_bounce_limit=2)
                assert [e.value for e in await _blocklist(h)] == ["full@example.com"]
                await _record(
                    h,
                    organization_id,
                    _event(
                        message_id,
                        EventKind.BOUNCED,
                        recipient="other@example.com",
                        bounce_type=BounceType.HARD,
                    ),
                    auto_blocklist=False,
                )
                assert [e.value for e in await _blocklist(h)] == ["full@example.com"]


class TestInboundEndpoint:
    async def test_a_wrong_tag_or_a_credential_without_events_is_404(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                created = await h.client.post(
                    "/service-credentials/sendgrid", json={"apiKey": "SG.secret"}
                )
                assert created.status_code == 201, created.text
                events_url: str = created.json()["eventsUrl"]
                wrong = events_url[:-1] + ("a" if events_url[-1] != "a" else "b")
                anonymous = httpx.AsyncClient(timeout=30)
                async with anonymous:
                    response = await anonymous.post(wrong, content=b"[]")
                    assert response.status_code == 404
                    # An SMTP credential has no event webhook (its bounces come by SMTP).
                    smtp_id = await h.smtp_credential(await _organization_of_key(h), smtp.port)
                    tag = events_url.rsplit("/", 1)[1]
                    base = events_url.split("/inbound/")[0]
                    response = await anonymous.post(f"{base}/inbound/{smtp_id}/{tag}", content=b"")
                    assert response.status_code == 404


async def _organization_of_key(h: Harness) -> str:
    response = await h.client.get("/organizations")
    assert response.status_code == 200, response.text
    organization_id: str = response.json()[0]["id"]
    return organization_id
