"""The blocklist at send time, against a real SMTP server: a hard bounce blocklists the address;
blocked recipients are left out (and the attempt says so); a message with none left fails as
`suppressed`; entries expire by the injected clock; organizations never share entries."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from postroom.auth import service as auth
from postroom.events import service as events
from postroom.events.models import BounceType, EventKind, EventSource
from postroom.messages.models import EmailMessage
from postroom.settings import EventSettings
from postroom.webhooks.events import EventType
from postroom.webhooks.models import WebhookEvent
from tests.factories import make_message
from tests.harness import Harness, HarnessFactory
from tests.servers.smtp import SmtpServer, smtp_server
from tests.statements import recorded_statements

BOUNCING = "gone@example.com"
OTHER = "still-here@example.com"


@asynccontextmanager
async def _harness(harness_factory: HarnessFactory) -> AsyncIterator[tuple[Harness, SmtpServer]]:
    with smtp_server() as smtp:
        async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
            yield h, smtp


async def _organization_of(h: Harness, message_id: str) -> str:
    async with h.sessionmaker() as session:
        found = await session.scalar(
            select(EmailMessage.organization_id).where(EmailMessage.id == message_id)
        )
    assert found is not None
    return found


async def _bounce(
    h: Harness,
    message_id: str,
    recipient: str,
    *,
    bounce_type: BounceType = BounceType.HARD,
    settings: EventSettings | None = None,
    event_id: str | None = None,
) -> None:
    """What an inbound parser hands over for a bounce of a sent message, recorded as it would."""
    organization_id = await _organization_of(h, message_id)
    bounce = events.ProviderEvent(
        kind=EventKind.BOUNCED,
        source=EventSource.SMTP,
        occurred_at=h.clock.now(),
        raw={"test": "bounce"},
        recipient=recipient,
        message_id=message_id,
        provider_event_id=event_id,
        bounce_type=bounce_type,
        diagnostic="550 5.1.1 no such user",
    )
    async with h.sessionmaker() as session, session.begin():
        await events.record(
            session,
            organization_id,
            [bounce],
            now=h.clock.now(),
            settings=settings or h.settings.events,
        )


async def _bounced_address(h: Harness, smtp: SmtpServer) -> dict[str, Any]:
    """A message sent to BOUNCING, then hard-bounced."""
    first = await make_message(h.client, status="outbox", to=[BOUNCING])
    assert await h.deliver() == 1
    assert smtp.received[-1].rcpt_tos == [BOUNCING]
    await _bounce(h, first["id"], BOUNCING)
    return first


async def _blocklist(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/blocklists")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


class TestHardBounce:
    async def test_puts_the_address_on_the_blocklist_as_automated(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            first = await _bounced_address(h, smtp)
            [entry] = await _blocklist(h.client)
            assert entry["type"] == "email"
            assert entry["value"] == BOUNCING
            assert entry["source"] == "automated-blocklists"
            assert entry["entityId"] == first["id"]
            assert entry["expirationTime"] is None
            by_source = await h.client.get(
                "/blocklists", params={"filter": "source:automated-blocklists"}
            )
            assert [e["id"] for e in by_source.json()] == [entry["id"]]

    async def test_the_next_message_goes_to_the_other_recipient_only_and_says_so(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            await _bounced_address(h, smtp)
            # Written in another case: the blocklist holds it lower-cased.
            second = await make_message(
                h.client, status="outbox", to=[OTHER], cc=["Gone@Example.com"]
            )
            assert await h.deliver() == 1

            received = smtp.received[-1]
            assert received.rcpt_tos == [OTHER]
            assert received.message["Cc"] is None
            assert b"Gone@Example.com" not in received.data
            assert (await h.message(second["id"]))["status"] == "sent"
            [attempt] = await h.attempts(second["id"])
            assert attempt["outcome"] == "sent"
            assert attempt["suppressedRecipients"] == ["Gone@Example.com"]

    async def test_a_message_to_it_alone_fails_as_suppressed_and_fires_failed(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            hook = await h.client.post(
                "/webhooks", json={"method": "POST", "url": "http://127.0.0.1:9/hooks"}
            )
            assert hook.status_code == 201, hook.text
            await _bounced_address(h, smtp)
            sent_before = len(smtp.received)
            alone = await make_message(h.client, status="outbox", to=[BOUNCING], bcc=[BOUNCING])
            assert await h.deliver() == 1

            assert len(smtp.received) == sent_before
            message = await h.message(alone["id"])
            assert message["status"] == "failed"
            assert BOUNCING in message["responseBody"]
            assert "blocklist" in message["responseBody"]
            [attempt] = await h.attempts(alone["id"])
            assert attempt["outcome"] == "suppressed"
            assert attempt["finishedTime"] is not None
            assert attempt["suppressedRecipients"] == [BOUNCING]
            assert BOUNCING in attempt["responseBody"]

            async with h.sessionmaker() as session:
                fired = (
                    await session.scalars(
                        select(WebhookEvent).where(WebhookEvent.entity_id == alone["id"])
                    )
                ).all()
            assert [e.type for e in fired] == [EventType.FAILED]
            assert fired[0].payload["data"]["attempt"]["outcome"] == "suppressed"
            assert fired[0].payload["data"]["emailMessage"]["status"] == "failed"

    async def test_after_its_expiration_time_it_is_mailed_again(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            first = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            await _bounce(h, first["id"], BOUNCING, settings=EventSettings(blocklist_days=1))
            [entry] = await _blocklist(h.client)
            assert entry["expirationTime"] is not None

            blocked = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(blocked["id"]))["status"] == "failed"

            h.clock.advance(timedelta(days=1, seconds=1))
            again = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(again["id"]))["status"] == "sent"
            assert smtp.received[-1].rcpt_tos == [BOUNCING]
            # Still listed, but blocking nothing.
            assert [e["id"] for e in await _blocklist(h.client)] == [entry["id"]]

    async def test_a_bounce_after_it_expired_renews_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            first = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            await _bounce(h, first["id"], BOUNCING, settings=EventSettings(blocklist_days=1))
            h.clock.advance(timedelta(days=2))
            again = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(again["id"]))["status"] == "sent"
            assert len(smtp.received) == 2
            await _bounce(h, again["id"], BOUNCING, settings=EventSettings(blocklist_days=1))
            [entry] = await _blocklist(h.client)
            assert entry["entityId"] == again["id"]

            third = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(third["id"]))["status"] == "failed"


class TestSettings:
    async def test_auto_blocklist_off_adds_nothing(self, harness_factory: HarnessFactory) -> None:
        async with _harness(harness_factory) as (h, smtp):
            first = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            await _bounce(h, first["id"], BOUNCING, settings=EventSettings(auto_blocklist=False))
            assert await _blocklist(h.client) == []
            again = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(again["id"]))["status"] == "sent"
            assert [r.rcpt_tos for r in smtp.received] == [[BOUNCING], [BOUNCING]]

    async def test_soft_bounces_blocklist_once_they_reach_the_limit(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            limit = EventSettings(soft_bounce_limit=2)
            first = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            await _bounce(h, first["id"], BOUNCING, bounce_type=BounceType.SOFT, settings=limit)
            assert await _blocklist(h.client) == []
            second = await make_message(h.client, status="outbox", to=[BOUNCING])
            await h.deliver()
            assert (await h.message(second["id"]))["status"] == "sent"
            assert len(smtp.received) == 2
            await _bounce(h, second["id"], BOUNCING, bounce_type=BounceType.SOFT, settings=limit)
            [entry] = await _blocklist(h.client)
            assert (entry["source"], entry["entityId"]) == ("automated-blocklists", second["id"])


class TestManualEntries:
    async def test_an_email_domain_entry_blocks_every_address_at_the_domain(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            created = await h.client.post(
                "/blocklists", json={"type": "email-domain", "value": "blocked.example.com"}
            )
            assert created.status_code == 201, created.text
            message = await make_message(
                h.client,
                status="outbox",
                to=["a@Blocked.Example.com", OTHER],
                bcc=["b@blocked.example.com", "c@sub.blocked.example.com"],
            )
            await h.deliver()
            assert sorted(smtp.received[-1].rcpt_tos) == ["c@sub.blocked.example.com", OTHER]
            [attempt] = await h.attempts(message["id"])
            assert attempt["suppressedRecipients"] == [
                "a@Blocked.Example.com",
                "b@blocked.example.com",
            ]

    async def test_an_internationalized_domain_matches_in_either_form(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            created = await h.client.post(
                "/blocklists", json={"type": "email-domain", "value": "bücher.example.com"}
            )
            assert created.status_code == 201, created.text
            message = await make_message(
                h.client,
                status="outbox",
                to=["a@xn--bcher-kva.example.com", OTHER],
                cc=["b@Bücher.example.com"],
            )
            await h.deliver()
            assert smtp.received[-1].rcpt_tos == [OTHER]
            [attempt] = await h.attempts(message["id"])
            assert attempt["suppressedRecipients"] == [
                "a@xn--bcher-kva.example.com",
                "b@Bücher.example.com",
            ]

    async def test_an_entry_made_through_the_api_applies_until_deleted(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            created = await h.client.post("/blocklists", json={"type": "email", "value": OTHER})
            assert created.status_code == 201, created.text
            blocked = await make_message(h.client, status="outbox", to=[OTHER])
            await h.deliver()
            assert (await h.message(blocked["id"]))["status"] == "failed"
            assert len(smtp.received) == 0

            deleted = await h.client.delete(f"/blocklists/{created.json()['id']}")
            assert deleted.status_code == 204
            sent = await make_message(h.client, status="outbox", to=[OTHER])
            await h.deliver()
            assert (await h.message(sent["id"]))["status"] == "sent"

    async def test_an_entry_with_an_expiration_time_stops_applying_then(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            until = h.clock.now() + timedelta(hours=1)
            created = await h.client.post(
                "/blocklists",
                json={"type": "email", "value": OTHER, "expirationTime": until.isoformat()},
            )
            assert created.status_code == 201, created.text
            blocked = await make_message(h.client, status="outbox", to=[OTHER])
            await h.deliver()
            assert (await h.message(blocked["id"]))["status"] == "failed"
            assert smtp.received == []
            h.clock.advance(timedelta(hours=1, seconds=1))
            sent = await make_message(h.client, status="outbox", to=[OTHER])
            await h.deliver()
            assert (await h.message(sent["id"]))["status"] == "sent"
            assert [r.rcpt_tos for r in smtp.received] == [[OTHER]]


class TestOrganizations:
    async def test_another_organizations_entries_are_neither_listed_nor_applied(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            async with h.sessionmaker() as session, session.begin():
                other = await auth.create_organization(session, "other", h.clock.now())
            async with httpx.AsyncClient(
                base_url=h.client.base_url, headers={"REB-APIKEY": other.api_key}, timeout=30
            ) as theirs:
                created = await theirs.post("/blocklists", json={"type": "email", "value": OTHER})
                assert created.status_code == 201, created.text
                domain = await theirs.post(
                    "/blocklists", json={"type": "email-domain", "value": "example.com"}
                )
                assert domain.status_code == 201, domain.text
                assert await _blocklist(h.client) == []

                mine = await make_message(h.client, status="outbox", to=[OTHER])
                blocked = await make_message(theirs, status="outbox", to=[OTHER])
                await h.deliver()
                assert (await h.message(mine["id"]))["status"] == "sent"
                assert [r.rcpt_tos for r in smtp.received] == [[OTHER]]
                response = await theirs.get(f"/email-messages/{blocked['id']}")
                assert response.json()["status"] == "failed"

    async def test_a_claim_asks_the_blocklist_once_per_organization(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            async with h.sessionmaker() as session, session.begin():
                other = await auth.create_organization(session, "other", h.clock.now())
            async with httpx.AsyncClient(
                base_url=h.client.base_url, headers={"REB-APIKEY": other.api_key}, timeout=30
            ) as theirs:
                for index in range(3):
                    await make_message(h.client, status="outbox", to=[f"m{index}@example.com"])
                    await make_message(theirs, status="outbox", to=[f"t{index}@example.com"])
            engine = h.sessionmaker.kw["bind"]
            assert isinstance(engine, AsyncEngine)
            with recorded_statements(engine) as statements:
                assert await h.deliver() == 6
            assert len(smtp.received) == 6
            assert len([s for s in statements if "FROM blocklists" in s]) == 2
