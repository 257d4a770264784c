"""Per-credential send pacing (delivery/pacing.py): a rate-limited credential's messages wait in
`outbox` (no attempt, no failure) until their slot, and several workers share the limit through
the database."""

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.crypto import SecretBox
from postroom.credentials import service as credentials
from postroom.credentials.schemas import PostmarkCredentialCreate
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery import service
from postroom.delivery.models import DeliveryAttempt, QueuedMessage
from postroom.delivery.pacing import LEAD_SECONDS, plan_slots
from postroom.messages.models import EmailMessage, MessageStatus
from tests.databases import DatabaseFactory
from tests.factories import make_message, queue_messages, queued, update_queued
from tests.harness import HarnessFactory
from tests.polling import eventually
from tests.servers.esp import PostmarkServer, serving

RATE = 20  # messages per second
MESSAGES = 200
WORKERS = 2
INTERVAL = timedelta(seconds=1 / RATE)
LEAD = timedelta(seconds=LEAD_SECONDS)
# A slot is stored with the attempt it was granted to (its started_at); times keep microseconds.
ROUNDING = timedelta(microseconds=1)


class TestPlan:
    def test_slots_are_one_interval_apart_from_the_later_of_now_and_the_next_free(self) -> None:
        now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        plan = plan_slots(now - timedelta(hours=1), now, rate=4, count=6, horizon_seconds=1)
        first, step = now + LEAD, timedelta(seconds=0.25)
        assert plan.slots == [first, first + step, first + 2 * step, first + 3 * step]
        assert plan.later == [first + 4 * step, first + 5 * step]
        assert plan.next_free == first + 4 * step

    def test_nothing_is_kept_while_the_next_free_slot_is_past_the_horizon(self) -> None:
        now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        busy_until = now + timedelta(seconds=5)
        plan = plan_slots(busy_until, now, rate=2, count=2, horizon_seconds=1)
        assert plan.slots == []
        assert plan.later == [busy_until, busy_until + timedelta(seconds=0.5)]
        assert plan.next_free == busy_until


class TestWaiting:
    async def test_messages_over_the_rate_wait_in_outbox_without_an_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential = await h.client.post(
                "/service-credentials/simulator", json={"maxSendRate": 1}
            )
            assert credential.json()["maxSendRate"] == 1
            credential_id = credential.json()["id"]
            ids = [
                (await make_message(h.client, status="outbox", credentialHash=credential_id))["id"]
                for _ in range(3)
            ]
            assert await h.deliver() == 1  # one a second: the others go back to the queue
            statuses = [(await h.message(i))["status"] for i in ids]
            assert statuses.count("sent") == 1 and statuses.count("outbox") == 2
            async with h.sessionmaker() as session:
                waiting = (await session.scalars(select(QueuedMessage))).all()
                assert [m.attempt_count for m in waiting] == [0, 0]  # not counted as attempts
                assert all(m.lease_token is None and m.leased_until is None for m in waiting)
                due = sorted(m.due_at - h.clock.now() for m in waiting)
                assert due == [LEAD + timedelta(seconds=1), LEAD + timedelta(seconds=2)]
                attempts = await session.scalar(select(func.count()).select_from(DeliveryAttempt))
                assert attempts == 1
            assert await h.deliver() == 0  # the next slot is a second away
            h.clock.advance(timedelta(seconds=1))
            assert await h.deliver() == 0
            h.clock.advance(LEAD)
            assert await h.deliver() == 1
            h.clock.advance(timedelta(seconds=1))
            assert await h.deliver() == 1
            assert [(await h.message(i))["status"] for i in ids] == ["sent"] * 3
            for message_id in ids:
                assert [a["number"] for a in await h.attempts(message_id)] == [1]

    async def test_a_send_that_missed_its_slot_goes_back_to_the_queue_without_an_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential = (
                await h.client.post("/service-credentials/simulator", json={"maxSendRate": 2})
            ).json()
            created = await make_message(h.client, status="outbox", credentialHash=credential["id"])
            async with h.sessionmaker() as session, session.begin():
                claim = await service.claim(
                    session,
                    now=h.clock.now(),
                    worker="stalled-worker",
                    token="lease_stalled",
                    settings=h.settings.delivery,
                    box=h.worker.box,
                    default_transport="eml",
                    blobs=h.worker.blobs,
                    clock=h.clock,
                )
            [job] = claim.jobs
            assert job.not_before is not None and job.not_before > h.clock.now()
            assert len(await h.attempts(created["id"])) == 1  # opened before any send
            # The worker was stalled past its slot: it sends nothing and says so.
            h.clock.advance(timedelta(seconds=1))
            missed = service.Result(job, service.SlotMissed(0.95), h.clock.now(), 0)
            async with h.sessionmaker() as session, session.begin():
                await service.record(session, [missed], h.settings.delivery, random.Random(1))
            assert await h.attempts(created["id"]) == []
            row = await queued(h.sessionmaker, created["id"])
            assert row is not None
            assert (row.attempt_count, row.lease_token, row.leased_until) == (0, None, None)
            assert row.due_at == h.clock.now()
            assert (await h.message(created["id"]))["status"] == "outbox"
            assert await h.deliver() == 1  # due at once, on a new slot
            assert (await h.message(created["id"]))["status"] == "sent"
            assert [a["number"] for a in await h.attempts(created["id"])] == [1]

    async def test_the_rate_can_be_changed_and_cleared(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = (
                await h.client.post("/service-credentials/simulator", json={"maxSendRate": 1})
            ).json()
            url = f"/service-credentials/simulator/{created['id']}"
            assert (await h.client.patch(url, json={"maxSendRate": 0.5})).json()[
                "maxSendRate"
            ] == 0.5
            cleared = await h.client.patch(url, json={"maxSendRate": None})
            assert cleared.json()["maxSendRate"] is None
            assert (await h.client.patch(url, json={"maxSendRate": 0})).status_code == 422
            for _ in range(3):
                await make_message(h.client, status="outbox", credentialHash=created["id"])
            assert await h.deliver() == 3  # no limit any more


@pytest.fixture
async def paced_queue(
    databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession], str]]:
    """A database with MESSAGES queued for one postmark credential limited to RATE."""
    url = await databases.clone()
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        organization = await auth.create_organization(session, "pacing", now)
        credential = await credentials.create_credential(
            session,
            organization.organization_id,
            PostmarkCredentialCreate(type="postmark", serverApiToken="token", maxSendRate=RATE),
            SecretBox("pacing-secret"),
            now,
        )
    # Not due until the workers are up (the test makes them due).
    await queue_messages(
        sessionmaker,
        organization.organization_id,
        MESSAGES,
        now + timedelta(days=1),
        credential_hash=credential.id,
    )
    yield url, sessionmaker, credential.id
    await engine.dispose()


def _log_says(path: Path, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return text in await asyncio.to_thread(path.read_text, errors="replace")

    return check


class TestSharedLimit:
    async def test_two_worker_processes_take_slots_one_interval_apart_and_send_everything(
        self,
        paced_queue: tuple[str, async_sessionmaker[AsyncSession], str],
        tmp_path: Path,
    ) -> None:
        """What the workers decided, not when the mail arrived: every send had a slot granted
        under the shared row's lock, and no two slots of the credential are closer than
        1/RATE, whichever process held them (each send starts within its slot's lateness or
        not at all; delivery/pacing.py, tested above)."""
        url, sessionmaker, _ = paced_queue
        with serving(PostmarkServer("token")) as postmark:
            env = {
                **os.environ,
                "POSTROOM_DATABASE_URL": url,
                "POSTROOM_SECRET_KEY": "pacing-secret",
                "POSTROOM_DATA_DIR": str(tmp_path / "data"),
                "POSTROOM_LOG_LEVEL": "INFO",
                "POSTROOM_LOG_JSON": "false",
                "POSTROOM_PROVIDERS__POSTMARK_URL": postmark.url,
                "POSTROOM_DELIVERY__BATCH_SIZE": "50",
                "POSTROOM_DELIVERY__POLL_SECONDS": "0.05",
                "POSTROOM_DELIVERY__LEASE_SECONDS": "30",
            }
            paths = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
            logs = [path.open("wb") for path in paths]
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "postroom", "worker"], env=env, stdout=log, stderr=log
                )
                for log in logs
            ]
            try:
                for path in paths:
                    await eventually(
                        _log_says(path, "delivery worker started"),
                        timeout=60,
                        what=f"{path.name} to start",
                    )
                await update_queued(sessionmaker, due_at=datetime.now(UTC))
                received = await postmark.wait_for(MESSAGES, timeout=120)
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                codes = [worker.wait(timeout=30) for worker in workers]
                for log in logs:
                    log.close()
        assert codes == [0] * WORKERS
        assert len(received) == MESSAGES

        async with sessionmaker() as session:
            sent = await session.scalar(
                select(func.count()).where(EmailMessage.status == MessageStatus.SENT)
            )
            attempts = (await session.execute(select(DeliveryAttempt))).scalars().all()
        assert sent == MESSAGES
        assert len(attempts) == MESSAGES  # waiting for a slot was never an attempt
        slots = sorted(a.started_at for a in attempts)
        gaps = [later - earlier for earlier, later in pairwise(slots)]
        assert min(gaps) >= INTERVAL - ROUNDING
        # 200 sends need 199 intervals, whoever sent them.
        assert slots[-1] - slots[0] >= (MESSAGES - 1) * INTERVAL - ROUNDING
        by_worker = Counter(a.worker for a in attempts)
        print(f"\npacing: sends per worker process {sorted(by_worker.values())}")
        assert len(by_worker) == WORKERS  # both were up before anything was due
