"""Three worker processes on PostgreSQL dispatch 2,000 webhook events; one is killed with
SIGKILL mid-run: every event still arrives, a duplicate only ever with its delivery's
webhook-id, and no more duplicates than the killed worker had in flight."""

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
from postroom.webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from tests.databases import BACKEND, DatabaseFactory
from tests.delivery.test_crash import Workers
from tests.polling import eventually
from tests.servers.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="worker processes share PostgreSQL")

EVENTS = 2000
WEBHOOKS = 4
CONCURRENCY = 5  # per webhook and worker
BATCH = 20  # a worker's deliveries in flight at most: the bound on a killed worker's duplicates
SECRET_KEY = "crash-test-secret"


async def _emit(sessionmaker: async_sessionmaker[AsyncSession], url: str) -> dict[str, str]:
    """EVENTS events spread over WEBHOOKS webhooks, a pending delivery each; delivery id ->
    event id."""
    now = datetime.now(UTC)
    box = SecretBox(SECRET_KEY)
    async with sessionmaker() as session, session.begin():
        organization = (await auth.create_organization(session, "crash", now)).organization_id
        hooks = [
            {
                "id": new_id("wh_"),
                "organization_id": organization,
                "status": "active",
                "events_filter": ["email-message-sent"],
                "method": "POST",
                "url": f"{url}/hook-{n}",
                "headers": {},
                "secret": box.encrypt("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "created_time": now,
                "updated_time": now,
            }
            for n in range(WEBHOOKS)
        ]
        events, deliveries = [], []
        for n in range(EVENTS):
            event_id = new_id("evt_")
            events.append(
                {
                    "id": event_id,
                    "organization_id": organization,
                    "type": "email-message-sent",
                    "entity_id": f"mail_{n}",
                    "payload": {"id": event_id, "type": "email-message-sent", "data": {}},
                    "created_time": now,
                }
            )
            deliveries.append(
                {
                    "id": new_id("msg_"),
                    "organization_id": organization,
                    "webhook_id": hooks[n % WEBHOOKS]["id"],
                    "event_id": event_id,
                    "status": "pending",
                    "attempt_count": 0,
                    "due_at": now,
                    "created_time": now,
                    "updated_time": now,
                }
            )
        await session.execute(insert(Webhook), hooks)
        await session.execute(insert(WebhookEvent), events)
        await session.execute(insert(WebhookDelivery), deliveries)
    return {str(d["id"]): str(d["event_id"]) for d in deliveries}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def crash_setup(
    databases: DatabaseFactory, tmp_path: Path, receiver: WebhookReceiver
) -> AsyncIterator[tuple[Workers, async_sessionmaker[AsyncSession], dict[str, str]]]:
    url = await databases.clone()
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    expected = await _emit(sessionmaker, receiver.url)
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_SECRET_KEY": SECRET_KEY,
        "POSTROOM_DATA_DIR": str(tmp_path / "data"),
        "POSTROOM_LOG_LEVEL": "WARNING",
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
        yield workers, sessionmaker, expected
    finally:
        workers.stop_all()
        await engine.dispose()


async def _all_succeeded(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        done = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == "succeeded")
        )
    return done == EVENTS


async def test_a_killed_worker_loses_no_event_and_duplicates_at_most_its_batch(
    crash_setup: tuple[Workers, async_sessionmaker[AsyncSession], dict[str, str]],
    receiver: WebhookReceiver,
) -> None:
    workers, sessionmaker, expected = crash_setup
    for _ in range(3):
        workers.start()

    async def quarter_arrived() -> bool:
        return len(receiver.received()) >= EVENTS // 4

    await eventually(quarter_arrived, timeout=180, what="a quarter of the events")
    victim = workers.processes[0]
    victim.kill()  # SIGKILL: no chance to finish or release anything
    victim.wait(timeout=10)
    workers.start()

    await eventually(lambda: _all_succeeded(sessionmaker), timeout=240, what="every event")
    assert workers.stop_all() == [0, 0, 0]

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
    crash_setup: tuple[Workers, async_sessionmaker[AsyncSession], dict[str, str]],
    receiver: WebhookReceiver,
) -> None:
    workers, sessionmaker, expected = crash_setup
    for _ in range(3):
        workers.start()
    await eventually(lambda: _all_succeeded(sessionmaker), timeout=240, what="every event")
    assert workers.stop_all() == [0, 0, 0]
    seen = Counter(r.headers["webhook-id"] for r in receiver.received())
    assert set(seen) == set(expected)
    assert max(seen.values()) == 1
