"""The dispatcher against real receivers on loopback, on a database of its own (claims are
global), with the harness's clock moved by hand instead of waiting for retries."""

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from postroom.auth.models import Organization
from postroom.core.destinations import DestinationPolicy
from postroom.core.ids import new_id
from postroom.credentials.models import ServiceCredential
from postroom.messages.models import MessageStatus
from postroom.settings import WebhookSettings
from postroom.webhooks import dispatcher as dispatch
from postroom.webhooks.client import WebhookClient
from postroom.webhooks.models import (
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookTracking,
)
from tests.factories import queue_messages
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually
from tests.servers.webhook_receiver import Reply, WebhookReceiver, webhook_receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@dataclass
class Hooks:
    harness: Harness
    dispatcher: dispatch.Dispatcher
    organization_id: str

    @property
    def clock(self) -> Any:
        return self.harness.clock

    async def webhook(self, url: str, **values: Any) -> str:
        box = self.dispatcher.box
        now = self.clock.now()
        row = {
            "id": new_id("wh_"),
            "organization_id": self.organization_id,
            "status": "active",
            "events_filter": ["email-message-sent"],
            "method": "POST",
            "url": url,
            "headers": {},
            "secret": box.encrypt(SECRET),
            "created_time": now,
            "updated_time": now,
            **values,
        }
        async with self.harness.sessionmaker() as session, session.begin():
            session.add(Webhook(**row))
        return str(row["id"])

    async def emit(self, webhook_id: str, count: int = 1) -> list[str]:
        """`count` events with a delivery each to the webhook, due now; the delivery ids."""
        now = self.clock.now()
        ids = []
        async with self.harness.sessionmaker() as session, session.begin():
            for n in range(count):
                event_id = new_id("evt_")
                payload = {
                    "id": event_id,
                    "type": "email-message-sent",
                    "occurredTime": now.isoformat(),
                    "data": {"emailMessage": {"id": f"mail_{n}", "subject": "Hé"}},
                }
                session.add(
                    WebhookEvent(
                        id=event_id,
                        organization_id=self.organization_id,
                        type="email-message-sent",
                        entity_id=f"mail_{n}",
                        payload=payload,
                        created_time=now,
                    )
                )
                await session.flush()
                delivery_id = new_id("msg_")
                session.add(
                    WebhookDelivery(
                        id=delivery_id,
                        organization_id=self.organization_id,
                        webhook_id=webhook_id,
                        event_id=event_id,
                        status="pending",
                        attempt_count=0,
                        due_at=now,
                        created_time=now,
                        updated_time=now,
                    )
                )
                ids.append(delivery_id)
        return ids

    async def delivery(self, delivery_id: str) -> WebhookDelivery:
        async with self.harness.sessionmaker() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            assert row is not None
            return row

    async def hook(self, webhook_id: str) -> Webhook:
        async with self.harness.sessionmaker() as session:
            row = await session.get(Webhook, webhook_id)
            assert row is not None
            return row

    async def tracking(self, delivery_id: str) -> list[WebhookTracking]:
        async with self.harness.sessionmaker() as session:
            rows = await session.scalars(
                select(WebhookTracking)
                .where(WebhookTracking.delivery_id == delivery_id)
                .order_by(WebhookTracking.attempt)
            )
            return list(rows)

    async def drain(self) -> int:
        total = 0
        while claimed := await self.dispatcher.run_once():
            total += claimed
        return total


def dispatcher_for(
    harness: Harness, policy: DestinationPolicy | None = None, **config: Any
) -> dispatch.Dispatcher:
    settings = harness.settings.model_copy(
        update={
            "webhooks": WebhookSettings(
                **{"timeout_seconds": 5, "lease_seconds": 60, "poll_seconds": 0.05, **config}
            )
        }
    )
    client = WebhookClient(
        policy or settings.destination_policy(),
        connect_timeout=5,
        timeout=settings.webhooks.timeout_seconds,
    )
    return dispatch.Dispatcher(
        sessionmaker=harness.sessionmaker,
        settings=settings,
        box=harness.worker.box,
        client=client,
        clock=harness.clock,
        rng=random.Random(3),
    )


async def organization_of(harness: Harness) -> str:
    """The harness's organization ("delivery"; the template database may hold others)."""
    async with harness.sessionmaker() as session:
        found = await session.scalars(
            select(Organization.id).where(Organization.name == "delivery")
        )
        return str(found.one())


@pytest.fixture
async def hooks(harness_factory: HarnessFactory) -> AsyncIterator[Hooks]:
    async with harness_factory() as harness:
        dispatcher = dispatcher_for(harness)
        try:
            yield Hooks(harness, dispatcher, await organization_of(harness))
        finally:
            await dispatcher.client.aclose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


def verify(got: Any, secret: str = SECRET) -> Any:
    return Verifier(secret).verify(got.body, got.headers)


async def test_500_then_200_delivers_later_with_the_same_webhook_id(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    receiver.script("/h", Reply(500, body=b"down for a moment"))
    webhook_id = await hooks.webhook(receiver.url + "/h")
    (delivery_id,) = await hooks.emit(webhook_id)

    assert await hooks.drain() == 1
    pending = await hooks.delivery(delivery_id)
    assert (pending.status, pending.attempt_count) == ("pending", 1)
    assert pending.due_at > hooks.clock.now() and pending.lease_token is None
    assert (await hooks.hook(webhook_id)).failing_since is not None
    assert await hooks.drain() == 0  # not due yet

    hooks.clock.advance(timedelta(seconds=6))
    assert await hooks.drain() == 1
    done = await hooks.delivery(delivery_id)
    assert (done.status, done.attempt_count) == ("succeeded", 2)
    assert (await hooks.hook(webhook_id)).failing_since is None

    first, second = receiver.received("/h")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id
    assert first.body == second.body
    assert verify(second)["data"]["emailMessage"]["subject"] == "Hé"
    tracked = await hooks.tracking(delivery_id)
    assert [(t.attempt, t.status) for t in tracked] == [(1, 500), (2, 200)]
    assert tracked[0].response == "down for a moment"
    assert tracked[1].request == second.body.decode()
    assert "webhook-signature" not in tracked[1].request_headers
    assert tracked[1].request_headers["webhook-id"] == delivery_id


async def test_retry_after_is_honoured(hooks: Hooks, receiver: WebhookReceiver) -> None:
    receiver.script("/busy", Reply(429, {"retry-after": "600"}))
    webhook_id = await hooks.webhook(receiver.url + "/busy")
    (delivery_id,) = await hooks.emit(webhook_id)
    await hooks.drain()
    waiting = await hooks.delivery(delivery_id)
    assert waiting.due_at >= hooks.clock.now() + timedelta(seconds=600)
    assert waiting.last_error == "HTTP 429"
    hooks.clock.advance(timedelta(seconds=300))  # past the schedule's 5 s, not the server's ask
    assert await hooks.drain() == 0
    hooks.clock.advance(timedelta(seconds=301))
    assert await hooks.drain() == 1
    assert (await hooks.delivery(delivery_id)).status == "succeeded"


async def test_rotation_sends_both_signatures_until_the_overlap_ends(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    until = hooks.clock.now() + timedelta(hours=1)
    webhook_id = await hooks.webhook(
        receiver.url + "/r",
        previous_secret=hooks.dispatcher.box.encrypt(OLD_SECRET),
        previous_secret_until=until,
    )
    await hooks.emit(webhook_id)
    await hooks.drain()
    (got,) = receiver.received("/r")
    verify(got, SECRET)
    verify(got, OLD_SECRET)
    assert len(got.headers["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize("kind", ["basic", "digest"])
async def test_credential_auth_reaches_the_receiver(
    hooks: Hooks, receiver: WebhookReceiver, kind: str
) -> None:
    receiver.require_auth("/a", kind, "hook-user", "pa ss")
    credential_id = await credential(hooks, kind, "127.0.0.1")
    webhook_id = await hooks.webhook(receiver.url + "/a", credential_id=credential_id)
    (delivery_id,) = await hooks.emit(webhook_id)
    await hooks.drain()
    assert (await hooks.delivery(delivery_id)).status == "succeeded"
    assert receiver.received("/a")[-1].authorized is True
    verify(receiver.received("/a")[-1])
    (tracked,) = await hooks.tracking(delivery_id)
    assert "authorization" not in tracked.request_headers


async def test_a_credential_is_sent_only_to_its_own_host(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    receiver.require_auth("/elsewhere", "basic", "hook-user", "pa ss")
    credential_id = await credential(hooks, "basic", "hooks.example.com")
    webhook_id = await hooks.webhook(receiver.url + "/elsewhere", credential_id=credential_id)
    (delivery_id,) = await hooks.emit(webhook_id)
    await hooks.drain()
    (got,) = receiver.received("/elsewhere")
    assert "authorization" not in got.headers and got.authorized is False
    assert (await hooks.delivery(delivery_id)).last_error == "HTTP 401"


async def credential(hooks: Hooks, kind: str, host: str) -> str:
    now = hooks.clock.now()
    credential_id = new_id("cred_")
    async with hooks.harness.sessionmaker() as session, session.begin():
        session.add(
            ServiceCredential(
                id=credential_id,
                organization_id=hooks.organization_id,
                type="webhook",
                status="active",
                settings={"host": host, "auth": {"type": kind, "username": "hook-user"}},
                secret=hooks.dispatcher.box.encrypt(json.dumps({"password": "pa ss"})),
                created_at=now,
                updated_at=now,
            )
        )
    return credential_id


async def test_410_disables_the_webhook_and_fails_its_pending_deliveries(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    receiver.script("/g", Reply(410))
    webhook_id = await hooks.webhook(receiver.url + "/g")
    first, second = await hooks.emit(webhook_id, 2)
    hooks.dispatcher.config = hooks.dispatcher.config.model_copy(
        update={"concurrency_per_endpoint": 1}
    )
    await hooks.drain()
    hook = await hooks.hook(webhook_id)
    assert (hook.status, hook.inactive_reason) == ("inactive", "gone (410)")
    rows = [await hooks.delivery(first), await hooks.delivery(second)]
    assert [r.status for r in rows] == ["failed", "failed"]
    assert len(receiver.received("/g")) == 1


async def test_an_endpoint_failing_for_inactive_after_hours_is_set_inactive(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    hooks.dispatcher.config = hooks.dispatcher.config.model_copy(update={"inactive_after_hours": 1})
    receiver.script("/f", *[Reply(503)] * 10)
    webhook_id = await hooks.webhook(receiver.url + "/f")
    (delivery_id,) = await hooks.emit(webhook_id)
    await hooks.drain()
    started = (await hooks.hook(webhook_id)).failing_since
    for step in (timedelta(seconds=6), timedelta(minutes=6), timedelta(minutes=40)):
        hooks.clock.advance(step)
        await hooks.drain()
    assert (await hooks.hook(webhook_id)).status == "active"
    hooks.clock.advance(timedelta(hours=2, minutes=30))
    await hooks.drain()
    hook = await hooks.hook(webhook_id)
    assert hook.status == "inactive" and started is not None
    assert hook.inactive_reason == f"failing since {started.isoformat()}"
    delivery = await hooks.delivery(delivery_id)
    assert delivery.status == "failed" and delivery.last_error == hook.inactive_reason
    assert [t.status for t in await hooks.tracking(delivery_id)] == [503] * 5


async def test_a_receiver_down_for_a_while_gets_every_event_once_up(hooks: Hooks) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook_id = await hooks.webhook(f"http://127.0.0.1:{port}/down")
    ids = await hooks.emit(webhook_id, 3)
    await hooks.drain()
    hooks.clock.advance(timedelta(seconds=6))
    await hooks.drain()
    for delivery_id in ids:
        assert (await hooks.delivery(delivery_id)).attempt_count == 2
        errors = [t.error or "" for t in await hooks.tracking(delivery_id)]
        assert len(errors) == 2 and all(e.startswith("connection error") for e in errors)
    with webhook_receiver(port) as back:
        hooks.clock.advance(timedelta(minutes=6))
        assert await hooks.drain() == 3
        got = back.received("/down")
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(ids)
    assert [(await hooks.delivery(i)).status for i in ids] == ["succeeded"] * 3


async def test_an_expired_lease_is_claimed_again(hooks: Hooks, receiver: WebhookReceiver) -> None:
    webhook_id = await hooks.webhook(receiver.url + "/l")
    (delivery_id,) = await hooks.emit(webhook_id)
    claimed = await hooks.dispatcher.claim()  # and its worker dies before sending
    assert [j.delivery_id for j in claimed] == [delivery_id]
    other = dispatcher_for(hooks.harness)
    try:
        assert await other.run_once() == 0
        hooks.clock.advance(timedelta(seconds=61))
        assert await other.run_once() == 1
    finally:
        await other.client.aclose()
    assert (await hooks.delivery(delivery_id)).status == "succeeded"
    assert [r.headers["webhook-id"] for r in receiver.received("/l")] == [delivery_id]


async def test_a_private_address_is_refused_at_send_time(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    strict = dispatcher_for(hooks.harness, DestinationPolicy())
    try:
        webhook_id = await hooks.webhook(receiver.url + "/p")
        (delivery_id,) = await hooks.emit(webhook_id)
        assert await strict.run_once() == 1
    finally:
        await strict.client.aclose()
    (tracked,) = await hooks.tracking(delivery_id)
    assert tracked.status is None
    assert tracked.error is not None and "not an allowed destination" in tracked.error
    assert (await hooks.delivery(delivery_id)).status == "pending"
    assert receiver.received("/p") == []


async def test_a_hanging_endpoint_delays_neither_another_webhook_nor_mail(
    hooks: Hooks, receiver: WebhookReceiver
) -> None:
    dispatcher = dispatcher_for(hooks.harness, timeout_seconds=50, concurrency_per_endpoint=2)
    receiver.script("/hang", *[Reply(hang=True)] * 10)
    hanging = await hooks.webhook(receiver.url + "/hang")
    # Not for email-message-sent: the mail sent below emits events of its own (webhooks.emit).
    healthy = await hooks.webhook(receiver.url + "/ok", events_filter=["email-message-failed"])
    # The hanging endpoint's events are the oldest: claimed first, they take its two slots.
    await hooks.emit(hanging, 6)
    hooks.clock.advance(timedelta(seconds=1))
    ok_ids = await hooks.emit(healthy, 6)
    mail = await queue_messages(
        hooks.harness.sessionmaker, hooks.organization_id, 3, hooks.clock.now()
    )
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:

        async def healthy_arrived() -> bool:
            return len(receiver.received("/ok")) >= len(ok_ids)

        await eventually(healthy_arrived, timeout=50, what="the healthy webhook's events")
        assert await hooks.harness.deliver() == 3
        assert len(receiver.received("/hang")) == 2  # its two slots, still hanging
        for message_id in mail:
            assert (await hooks.harness.message(message_id))["status"] == MessageStatus.SENT
    finally:
        stop.set()
        await running
        await dispatcher.client.aclose()
    assert sorted(r.headers["webhook-id"] for r in receiver.received("/ok")) == sorted(ok_ids)
