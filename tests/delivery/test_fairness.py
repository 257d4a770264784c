"""Fair claiming: one tenant's queue or one slow server never holds back another tenant's mail.
Claims go round-robin over (organization, credential) keys, and each key has a bounded share
of a worker's sends (delivery/repository.py, delivery/worker.py)."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from postroom.delivery import repository, service
from postroom.delivery.models import DeliveryAttempt
from postroom.messages.models import EmailMessage, MessageStatus
from tests.databases import BACKEND
from tests.factories import make_org, queue_messages
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server, tarpit_server

SHARE = 20  # in_flight_per_key
# Far beyond anything the test waits for: the order of events is decided by fairness alone.
SLOW = {"connect_timeout_seconds": 30, "send_timeout_seconds": 30, "lease_seconds": 120}


async def _status(h: Harness, message_id: str) -> str:
    async with h.sessionmaker() as session:
        status = await session.scalar(
            select(EmailMessage.status).where(EmailMessage.id == message_id)
        )
        return str(status)


async def _attempts(h: Harness, credential_id: str, *, finished: bool) -> int:
    outcome = DeliveryAttempt.outcome
    async with h.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(DeliveryAttempt)
            .where(
                DeliveryAttempt.credential_id == credential_id,
                outcome.is_not(None) if finished else outcome.is_(None),
            )
        )
        return int(count or 0)


class TestRoundRobin:
    def test_every_keys_first_then_every_keys_second(self) -> None:
        t0 = datetime(2026, 12, 4, tzinfo=UTC)
        at = [t0 + timedelta(seconds=n) for n in range(6)]
        candidates = [
            ("big", "b1", at[0]),
            ("big", "b2", at[1]),
            ("big", "b3", at[2]),
            ("small", "s1", at[4]),
            ("late", "l1", at[5]),
            ("late", "l2", at[5]),
        ]
        assert repository.round_robin(candidates, 10) == ["b1", "s1", "l1", "b2", "l2", "b3"]
        assert repository.round_robin(candidates, 3) == ["b1", "s1", "l1"]


class TestClaim:
    async def test_a_claim_takes_every_tenants_oldest_before_a_big_queues_next(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(batch_size=10, in_flight_per_key=SHARE) as h:
            big, other = await make_org(h.sessionmaker, "big"), await make_org(h.sessionmaker)
            credential = await h.smtp_credential(big.organization_id, 2525)
            now = h.clock.now()
            early = now - timedelta(hours=1)
            through_credential = await queue_messages(
                h.sessionmaker, big.organization_id, 30, early, credential_hash=credential
            )
            server_wide = await queue_messages(
                h.sessionmaker, big.organization_id, 30, early + timedelta(seconds=1)
            )
            [single] = await queue_messages(h.sessionmaker, other.organization_id, 1, now)

            async def claim(in_flight: dict[str, int] | None) -> list[str]:
                async with h.sessionmaker() as session, session.begin():
                    taken = await service.claim(
                        session,
                        now=h.clock.now(),
                        worker="test",
                        token="lease_test",
                        settings=h.settings.delivery,
                        box=h.worker.box,
                        default_transport="smtp",
                        blobs=h.worker.blobs,
                        in_flight=in_flight,
                    )
                    return [job.message.id for job in taken.jobs]

            first = await claim({})
            # Round-robin: the single message is not behind the 60 older ones; the credential
            # and the server-wide transport are keys of their own.
            assert single in first
            assert len(set(first) & set(through_credential)) == 5
            assert len(set(first) & set(server_wide)) == 4
            # A key whose share the worker already holds gets nothing more.
            big_key = repository.delivery_key(big.organization_id, credential)
            second = await claim({big_key: SHARE})
            assert len(second) == 10
            assert set(second) <= set(server_wide) - set(first)


class TestSlowServer:
    async def test_a_tarpit_and_a_huge_queue_do_not_hold_back_another_tenants_message(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as sink, tarpit_server() as tarpit:
            async with harness_factory(
                smtp_url=f"smtp://127.0.0.1:{sink.port}",
                batch_size=50,
                batches_in_flight=2,
                in_flight_per_key=SHARE,
                **SLOW,
            ) as h:
                tarpitted = await make_org(h.sessionmaker, "tarpitted")
                busy = await make_org(h.sessionmaker, "busy")
                small = await make_org(h.sessionmaker, "small")
                credential = await h.smtp_credential(tarpitted.organization_id, tarpit.port)
                now = h.clock.now()
                # The tarpit's messages are the oldest, then the big queue's; the small
                # tenant's one message is the newest of all (on main, both batches in flight
                # filled with the tarpit's messages and it waited for their timeouts).
                await queue_messages(
                    h.sessionmaker,
                    tarpitted.organization_id,
                    200,
                    now - timedelta(hours=2),
                    credential_hash=credential,
                )
                await queue_messages(
                    h.sessionmaker, busy.organization_id, 20_000, now - timedelta(hours=1)
                )
                [single] = await queue_messages(h.sessionmaker, small.organization_id, 1, now)

                stop = asyncio.Event()
                worker = asyncio.create_task(h.worker.run(stop))
                try:

                    async def single_recorded() -> bool:
                        return await _status(h, single) != MessageStatus.OUTBOX

                    await eventually(single_recorded, timeout=60, what="the single message")
                    # Read after the fact, so these are upper bounds of their values then.
                    timed_out = await _attempts(h, credential, finished=True)
                    received = len(sink.received)
                    assert await _status(h, single) == MessageStatus.SENT
                    # The tarpit's messages were claimed (their attempts opened) and still hang.
                    assert await _attempts(h, credential, finished=False) >= 1
                    assert timed_out == 0
                    assert received < 2_000

                    # No barrier: the big queue keeps flowing, claim after claim of its share,
                    # while the tarpit's sends still hang.
                    async def flowing() -> bool:
                        return len(sink.received) >= 10 * SHARE

                    await eventually(flowing, timeout=60, what="the big queue's messages")
                    assert await _attempts(h, credential, finished=True) == 0
                finally:
                    # The tarpit drops its connections: the sends it held fail at once.
                    tarpit.close()
                    stop.set()
                    await asyncio.wait_for(worker, timeout=60)


async def _plan(session: AsyncSession, statement: ClauseElement, params: dict[str, Any]) -> str:
    """PostgreSQL's plan of the statement, as the claim would run it."""
    compiled = cast(
        SQLCompiler,
        statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
        ),
    )
    bound = {**compiled.params, **params}
    values = tuple(bound[name] for name in compiled.positiontup or ())
    connection = await session.connection()
    rows = await connection.exec_driver_sql(f"EXPLAIN {compiled}", values)
    return "\n".join(str(row[0]) for row in rows)


@pytest.mark.skipif(BACKEND != "postgresql", reason="plans are PostgreSQL's")
class TestPlans:
    async def test_a_claim_probes_the_key_index_and_never_scans_the_outbox(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            big, other = await make_org(h.sessionmaker, "big"), await make_org(h.sessionmaker)
            now = h.clock.now()
            ids = await queue_messages(h.sessionmaker, big.organization_id, 20_000, now)
            await queue_messages(h.sessionmaker, other.organization_id, 1, now)
            async with h.sessionmaker() as session:
                await session.execute(text("ANALYZE delivery_queue"))
                keys = await session.execute(repository.due_keys, {"now": now})
                wanted = {str(row[0]): 20 for row in keys}
                assert len(wanted) == 2
                plans = [
                    await _plan(session, repository.due_keys, {"now": now}),
                    await _plan(session, repository.candidates_statement(now, wanted), {}),
                    await _plan(
                        session, repository.claim_statement(ids[:40], now, now, "lease_x"), {}
                    ),
                ]
            for plan in plans:
                assert "Seq Scan" not in plan, plan
            assert (
                "ix_delivery_queue_key_due" in plans[0] and "ix_delivery_queue_key_due" in plans[1]
            )
            assert re.search(r"Index (Only )?Scan using pk_delivery_queue", plans[2]), plans[2]
