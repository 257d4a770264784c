"""Several worker processes on PostgreSQL share one queue; a worker killed mid-run loses
nothing, and duplicates are bounded by the batches it had in flight."""

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.messages.models import EmailMessage, MessageStatus
from tests.databases import BACKEND, DatabaseFactory
from tests.factories import queue_messages
from tests.polling import eventually
from tests.servers.smtp import SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="worker processes share PostgreSQL")

MESSAGES = 2000
BATCH = 25
IN_FLIGHT = 2  # batches a worker sends at once (claimed, not yet recorded)


async def _queue(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> set[str]:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        organization = await auth.create_organization(session, "crash", now)
    return set(await queue_messages(sessionmaker, organization.organization_id, count, now))


class Workers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.processes)}.log").open("wb")
        self._files.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "postroom", "worker"], env=self.env, stdout=log, stderr=log
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> list[int]:
        alive = [p for p in self.processes if p.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in alive]
        for log in self._files:
            log.close()
        return codes


@pytest.fixture
async def crash_setup(
    databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[tuple[SmtpServer, Workers, async_sessionmaker[AsyncSession], set[str]]]:
    url = await databases.clone()
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    expected = await _queue(sessionmaker, MESSAGES)
    with smtp_server() as smtp:
        env = {
            **os.environ,
            "POSTROOM_DATABASE_URL": url,
            "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
            "POSTROOM_SECRET_KEY": "crash-test-secret",
            "POSTROOM_DATA_DIR": str(tmp_path / "data"),
            "POSTROOM_LOG_LEVEL": "WARNING",
            "POSTROOM_DELIVERY__BATCH_SIZE": str(BATCH),
            "POSTROOM_DELIVERY__BATCHES_IN_FLIGHT": str(IN_FLIGHT),
            # Long enough that a live worker on a loaded machine never outlives its lease (which
            # would be a legitimate duplicate); short enough that the killed one's run out soon.
            "POSTROOM_DELIVERY__LEASE_SECONDS": "10",
            "POSTROOM_DELIVERY__POLL_SECONDS": "0.1",
            "POSTROOM_DESTINATIONS__ALLOW": "127.0.0.1",
        }
        workers = Workers(env, tmp_path)
        try:
            yield smtp, workers, sessionmaker, expected
        finally:
            workers.stop_all()
            await engine.dispose()


async def _all_sent(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        sent = await session.scalar(
            select(func.count()).where(EmailMessage.status == MessageStatus.SENT)
        )
    return sent == MESSAGES


def _message_ids(smtp: SmtpServer) -> Counter[str]:
    return Counter(
        str(r.message["Message-ID"]).strip("<>").partition("@")[0] for r in smtp.received
    )


class TestCrash:
    async def test_a_killed_worker_loses_nothing_and_duplicates_at_most_its_batches(
        self,
        crash_setup: tuple[SmtpServer, Workers, async_sessionmaker[AsyncSession], set[str]],
    ) -> None:
        smtp, workers, sessionmaker, expected = crash_setup
        for _ in range(3):
            workers.start()
        await smtp.wait_for(MESSAGES // 4, timeout=120)
        victim = workers.processes[0]
        victim.kill()  # SIGKILL: no chance to finish or release anything
        victim.wait(timeout=10)
        workers.start()

        await eventually(lambda: _all_sent(sessionmaker), timeout=180, what="all messages sent")
        assert workers.stop_all() == [0, 0, 0]

        seen = _message_ids(smtp)
        assert set(seen) == expected
        duplicates = sum(count - 1 for count in seen.values())
        # What the victim had claimed and not recorded: at most IN_FLIGHT batches, each of which
        # it may have sent in full before it died.
        print(f"duplicates after SIGKILL: {duplicates} (bound: {IN_FLIGHT * BATCH})")
        assert duplicates <= IN_FLIGHT * BATCH

    async def test_without_a_kill_there_are_no_duplicates(
        self,
        crash_setup: tuple[SmtpServer, Workers, async_sessionmaker[AsyncSession], set[str]],
    ) -> None:
        smtp, workers, sessionmaker, expected = crash_setup
        for _ in range(3):
            workers.start()
        await eventually(lambda: _all_sent(sessionmaker), timeout=180, what="all messages sent")
        assert workers.stop_all() == [0, 0, 0]
        seen = _message_ids(smtp)
        assert set(seen) == expected
        assert max(seen.values()) == 1
