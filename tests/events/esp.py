"""What the SendGrid, Mailgun and Postmark event tests share: a message sent through the
provider's look-alike by the real worker, requests posted to the credential's `eventsUrl`, and
what came of them (the message's events, the webhooks fired, the blocklist)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from postroom.blocklists.models import BlocklistEntry
from postroom.events.models import MessageEvent
from postroom.messages.models import EmailMessage
from tests.factories import make_message
from tests.harness import Harness
from tests.servers.webhook_receiver import WebhookReceiver
from tests.webhooks.test_api import make_webhook
from tests.webhooks.test_dispatcher import dispatcher_for

FIXTURES = Path(__file__).parent / "fixtures"
RECIPIENT = "recipient@example.com"
HOOK_PATH = "/provider-events"
EVENT_TYPES = [
    "email-message-delivered",
    "email-message-deferred",
    "email-message-bounced",
    "email-message-complained",
]


def fixture(provider: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_text())
    return loaded


@dataclass(frozen=True)
class Sent:
    credential: dict[str, Any]
    """The credential as POST answered it."""
    message_id: str
    organization_id: str

    @property
    def events_url(self) -> str:
        url: str = self.credential["eventsUrl"]
        return url


async def send_through(h: Harness, type_: str, credential: dict[str, Any]) -> Sent:
    """A new credential of `type_` (its look-alike's URL set in the harness's providers) and a
    message to RECIPIENT sent through it by the worker."""
    created = await h.client.post(f"/service-credentials/{type_}", json=credential)
    assert created.status_code == 201, created.text
    message = await make_message(
        h.client, status="outbox", credentialHash=created.json()["id"], to=[RECIPIENT]
    )
    assert await h.deliver() == 1
    assert (await h.message(message["id"]))["status"] == "sent"
    async with h.sessionmaker() as session:
        organization_id = await session.scalar(
            select(EmailMessage.organization_id).where(EmailMessage.id == message["id"])
        )
    assert organization_id is not None
    return Sent(created.json(), message["id"], organization_id)


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """A provider's request: no API key, only what the provider itself sends."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            url, content=body, headers={"content-type": "application/json", **(headers or {})}
        )


async def events_of(h: Harness, message_id: str) -> list[dict[str, Any]]:
    response = await h.client.get(f"/email-messages/{message_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def recorded_count(h: Harness) -> int:
    """Events recorded on any message of the harness's database."""
    async with h.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(MessageEvent))
    return count or 0


async def blocklisted(h: Harness, organization_id: str) -> list[str]:
    async with h.sessionmaker() as session:
        values = await session.scalars(
            select(BlocklistEntry.value).where(BlocklistEntry.organization_id == organization_id)
        )
        return sorted(values)


async def provider_message_id(h: Harness, message_id: str) -> str:
    """The provider's id for the message, as its attempt recorded it from the look-alike's
    answer."""
    [attempt] = await h.attempts(message_id)
    found: str = attempt["providerMessageId"]
    assert found
    return found


async def subscribe(h: Harness, receiver: WebhookReceiver) -> None:
    await make_webhook(h.client, url=receiver.url + HOOK_PATH, eventsFilter=EVENT_TYPES)


async def fired(h: Harness, receiver: WebhookReceiver) -> list[tuple[str, str, str]]:
    """Runs the real dispatcher until nothing is due; each webhook the receiver got as (type,
    message id, event type)."""
    dispatcher = dispatcher_for(h)
    try:
        while await dispatcher.run_once():
            pass
    finally:
        await dispatcher.client.aclose()
    bodies = [json.loads(r.body) for r in receiver.received(HOOK_PATH)]
    return [
        (b["type"], b["data"]["emailMessage"]["id"], b["data"]["event"]["type"]) for b in bodies
    ]


def kinds(events: Iterable[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["bounceType"]) for e in events]
