"""Per-credential send pacing (delivery/pacing.py): a rate-limited credential's messages wait in
`outbox` (no attempt, no failure) until their slot, and several workers share the limit through
the database."""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.credentials import service as credentials
from postroom.credentials.schemas import PostmarkCredentialCreate
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery import service
from postroom.delivery.models import DeliveryAttempt
from postroom.delivery.pacing import LEAD_SECONDS, plan_slots
from postroom.messages.models import EmailMessage, MessageStatus
from tests.databases import DatabaseFactory
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.esp import PostmarkServer, serving

RATE = 20  # messages per second
MESSAGES = 200
WORKERS = 2
# Sends start on slots exactly 1/RATE apart, each within its allowed lateness (a quarter of an
# interval, 12.5 ms here) or not at all (delivery/pacing.py), and reach the server a few
# milliseconds later: a one-second window of arrivals may catch one slot more than RATE, never
# two while lateness plus network jitter stays under one interval (50 ms). Observed: 21 at most.
TOLERANCE = 1
LEAD = timedelta(seconds=LEAD_SECONDS)


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
                waiting = (
                    await session.scalars(
                        select(EmailMessage).where(EmailMessage.status == MessageStatus.OUTBOX)
                    )
                ).all()
                assert [m.attempt_count for m in waiting] == [0, 0]  # not counted as attempts
                assert all(m.lease_token is None for m in waiting)
                due = sorted(
                    m.next_attempt_at - h.clock.now() for m in waiting if m.next_attempt_at
                )
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
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, created["id"])
                assert row is not None
                assert (row.status, row.attempt_count, row.lease_token) == ("outbox", 0, None)
                assert row.next_attempt_at == h.clock.now()
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
        await session.execute(
            insert(EmailMessage),
            [
                {
                    "id": new_id("mail_msg_"),
                    "organization_id": organization.organization_id,
                    "status": MessageStatus.OUTBOX,
                    "from_address": "sender@example.com",
                    "to_addresses": [f"user{n}@example.com"],
                    "cc_addresses": [],
                    "bcc_addresses": [],
                    "subject": f"Message {n}",
                    "text": "text",
                    "html": "<p>html</p>",
                    "attachments": [],
                    "credential_hash": credential.id,
                    "initiated_at": now,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "search_text": "",
                }
                for n in range(MESSAGES)
            ],
        )
    yield url, sessionmaker, credential.id
    await engine.dispose()


def _most_in_one_second(arrivals: list[float]) -> int:
    """The largest number of arrivals in any window [t, t + 1 s)."""
    most, first = 0, 0
    for last, moment in enumerate(arrivals):
        while moment - arrivals[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


class TestSharedLimit:
    async def test_two_worker_processes_keep_a_credential_under_its_rate_and_send_everything(
        self,
        paced_queue: tuple[str, async_sessionmaker[AsyncSession], str],
        tmp_path: Path,
    ) -> None:
        url, sessionmaker, _ = paced_queue
        with serving(PostmarkServer("token")) as postmark:
            env = {
                **os.environ,
                "POSTROOM_DATABASE_URL": url,
                "POSTROOM_SECRET_KEY": "pacing-secret",
                "POSTROOM_DATA_DIR": str(tmp_path / "data"),
                "POSTROOM_LOG_LEVEL": "WARNING",
                "POSTROOM_PROVIDERS__POSTMARK_URL": postmark.url,
                "POSTROOM_DELIVERY__BATCH_SIZE": "50",
                "POSTROOM_DELIVERY__POLL_SECONDS": "0.05",
                "POSTROOM_DELIVERY__LEASE_SECONDS": "30",
            }
            logs = [(tmp_path / f"worker-{n}.log").open("wb") for n in range(WORKERS)]
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "postroom", "worker"], env=env, stdout=log, stderr=log
                )
                for log in logs
            ]
            started = time.monotonic()
            try:
                received = await postmark.wait_for(MESSAGES, timeout=60)
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                codes = [worker.wait(timeout=30) for worker in workers]
                for log in logs:
                    log.close()
        assert codes == [0] * WORKERS

        arrivals = sorted(r.arrived for r in received)
        most = _most_in_one_second(arrivals)
        span = arrivals[-1] - arrivals[0]
        print(f"\npacing: workers up and done in {time.monotonic() - started:.1f} s")
        print(f"\npacing: {MESSAGES} messages at most {RATE}/s by {WORKERS} worker processes: "
              f"max {most} in any 1 s window (tolerance +{TOLERANCE}), {span:.2f} s in all, "
              f"{(MESSAGES - 1) / span:.2f}/s on average")  # fmt: skip
        assert len(received) == MESSAGES
        assert most <= RATE + TOLERANCE
        # The slots are 1/RATE apart whoever sends them: 200 messages need 199 intervals.
        assert span >= (MESSAGES - 1) / RATE - 0.1
        async with sessionmaker() as session:
            sent = await session.scalar(
                select(func.count()).where(EmailMessage.status == MessageStatus.SENT)
            )
            attempts = await session.scalar(select(func.count()).select_from(DeliveryAttempt))
            by_worker = dict(
                (
                    await session.execute(
                        select(DeliveryAttempt.worker, func.count()).group_by(
                            DeliveryAttempt.worker
                        )
                    )
                ).all()
            )
        print(f"pacing: sends per worker process {sorted(by_worker.values())}")
        assert sent == MESSAGES
        assert attempts == MESSAGES  # waiting for a slot was never an attempt
        assert len(by_worker) == WORKERS  # both took part
