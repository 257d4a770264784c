"""Three worker processes on PostgreSQL send 2,000 messages to a real SMTP server, with a
webhook on every outcome; one worker is killed with SIGKILL mid-run: every message's event still
arrives at the receiver, a duplicate only ever with its delivery's webhook-id, and no more
duplicates than the killed worker had webhook deliveries in flight."""

import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.messages.models import EmailMessage, MessageStatus
from postroom.webhooks.events import EventType
from postroom.webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from tests.databases import BACKEND, DatabaseFactory
from tests.delivery.test_crash import Workers
from tests.factories import queue_messages
from tests.polling import eventually
from tests.servers.smtp import smtp_server
from tests.servers.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="worker processes share PostgreSQL")

MESSAGES = 2000
CONCURRENCY = 5  # per webhook and worker
BATCH = 20  # a worker's deliveries in flight at most: the bound on a killed worker's duplicates
SECRET_KEY = "crash-test-secret"


async def _setup(sessionmaker: async_sessionmaker[AsyncSession], url: str) -> None:
    """An organization with a webhook on every event type, and MESSAGES messages in outbox."""
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        organization = (await auth.create_organization(session, "crash", now)).organization_id
        await session.execute(
            insert(Webhook),
            [
                {
                    "id": new_id("wh_"),
                    "organization_id": organization,
                    "status": "active",
                    "events_filter": [str(t) for t in EventType],
                    "method": "POST",
                    "url": f"{url}/hook",
                    "headers": {},
                    "secret": SecretBox(SECRET_KEY).encrypt(
                        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                    ),
                    "created_time": now,
                    "updated_time": now,
                }
            ],
        )
    await queue_messages(sessionmaker, organization, MESSAGES, now)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def crash_setup(
    databases: DatabaseFactory, tmp_path: Path, receiver: WebhookReceiver
) -> AsyncIterator[tuple[Workers, async_sessionmaker[AsyncSession]]]:
    url = await databases.clone()
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    await _setup(sessionmaker, receiver.url)
    with smtp_server() as smtp:
        env = {
            **os.environ,
            "POSTROOM_DATABASE_URL": url,
            "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
            "POSTROOM_SECRET_KEY": SECRET_KEY,
            "POSTROOM_DATA_DIR": str(tmp_path / "data"),
            "POSTROOM_LOG_LEVEL": "WARNING",
            "POSTROOM_DELIVERY__BATCH_SIZE": "25",
            "POSTROOM_DELIVERY__LEASE_SECONDS": "10",
            "POSTROOM_DELIVERY__POLL_SECONDS": "0.1",
            "POSTROOM_WEBHOOKS__BATCH_SIZE": str(BATCH),
            "POSTROOM_WEBHOOKS__CONCURRENCY_PER_ENDPOINT": str(CONCURRENCY),
            # As in the mail crash test: a live worker on a loaded machine never outlives its
            # lease; the killed one's run out soon.
            "POSTROOM_WEBHOOKS__LEASE_SECONDS": "15",
            "POSTROOM_WEBHOOKS__TIMEOUT_SECONDS": "10",
            "POSTROOM_WEBHOOKS__POLL_SECONDS": "0.1",
            "POSTROOM_DESTINATIONS__ALLOW": "127.0.0.1",
        }
        workers = Workers(env, tmp_path)
        try:
            yield workers, sessionmaker
        finally:
            workers.stop_all()
            await engine.dispose()


async def _all_done(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """Every message sent, and every delivery of its event succeeded."""
    async with sessionmaker() as session:
        sent = await session.scalar(
            select(func.count()).where(EmailMessage.status == MessageStatus.SENT)
        )
        open_deliveries = await session.scalar(
            select(func.count()).where(WebhookDelivery.status != "succeeded")
        )
    return sent == MESSAGES and open_deliveries == 0


async def _expected(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """Each message's one event (sent): delivery id -> event id, after checking there is
    exactly one event a message."""
    async with sessionmaker() as session:
        events = (await session.execute(select(WebhookEvent.entity_id, WebhookEvent.type))).all()
        deliveries = (
            await session.execute(select(WebhookDelivery.id, WebhookDelivery.event_id))
        ).all()
    assert len(events) == MESSAGES
    assert {t for _, t in events} == {"email-message-sent"}
    assert len({entity for entity, _ in events}) == MESSAGES
    return {delivery: event for delivery, event in deliveries}


async def test_a_killed_worker_loses_no_event_and_duplicates_at_most_its_batch(
    crash_setup: tuple[Workers, async_sessionmaker[AsyncSession]],
    receiver: WebhookReceiver,
) -> None:
    workers, sessionmaker = crash_setup
    for _ in range(3):
        workers.start()

    async def quarter_arrived() -> bool:
        return len(receiver.received()) >= MESSAGES // 4

    await eventually(quarter_arrived, timeout=180, what="a quarter of the events")
    victim = workers.processes[0]
    victim.kill()  # SIGKILL: no chance to finish or release anything
    victim.wait(timeout=10)
    workers.start()

    await eventually(lambda: _all_done(sessionmaker), timeout=300, what="every message and event")
    assert workers.stop_all() == [0, 0, 0]

    expected = await _expected(sessionmaker)
    got = receiver.received()
    seen = Counter(r.headers["webhook-id"] for r in got)
    assert set(seen) == set(expected)
    # A duplicate is the same delivery sent again: same webhook-id, same event, same body.
    for request in got:
        assert json.loads(request.body)["id"] == expected[request.headers["webhook-id"]]
    duplicates = sum(count - 1 for count in seen.values())
    print(f"webhook duplicates after SIGKILL: {duplicates} (bound: {BATCH})")
    assert duplicates <= BATCH


async def test_without_a_kill_there_are_no_duplicates(
    crash_setup: tuple[Workers, async_sessionmaker[AsyncSession]],
    receiver: WebhookReceiver,
) -> None:
    workers, sessionmaker = crash_setup
    for _ in range(3):
        workers.start()
    await eventually(lambda: _all_done(sessionmaker), timeout=300, what="every message and event")
    assert workers.stop_all() == [0, 0, 0]
    expected = await _expected(sessionmaker)
    seen = Counter(r.headers["webhook-id"] for r in receiver.received())
    assert set(seen) == set(expected)
    assert max(seen.values()) == 1
