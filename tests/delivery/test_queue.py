"""The delivery queue (delivery_queue): a narrow row per message in `outbox`, claimed and leased
without touching the message, which is written once its outcome is known."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from postroom.delivery import service
from postroom.delivery.models import QueuedMessage
from postroom.delivery.transports.base import Receipt
from postroom.messages.models import EmailMessage
from tests.databases import BACKEND
from tests.factories import make_message, queued, update_message
from tests.harness import Harness, HarnessFactory


async def _claim(h: Harness, token: str) -> service.Claim:
    async with h.sessionmaker() as session, session.begin():
        return await service.claim(
            session,
            now=h.clock.now(),
            worker="test",
            token=token,
            settings=h.settings.delivery,
            box=h.worker.box,
            default_transport="eml",
            blobs=h.worker.blobs,
        )


class TestQueue:
    async def test_a_message_is_queued_while_in_outbox_and_leaves_the_queue_once_settled(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            draft = await make_message(h.client)
            assert await queued(h.sessionmaker, draft["id"]) is None
            sent = await h.client.patch(f"/email-messages/{draft['id']}", json={"status": "outbox"})
            assert sent.status_code == 200, sent.text
            row = await queued(h.sessionmaker, draft["id"])
            assert row is not None and row.due_at == h.clock.now().replace(microsecond=0)
            assert (row.attempt_count, row.lease_token) == (0, None)
            assert await h.deliver() == 1
            assert (await h.message(draft["id"]))["status"] == "sent"
            assert await queued(h.sessionmaker, draft["id"]) is None

    async def test_a_lease_that_ran_out_is_claimed_again_and_the_old_one_settles_nothing(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            [first] = (await _claim(h, "lease_first")).jobs
            assert (await _claim(h, "lease_second")).jobs == []  # leased
            h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
            [second] = (await _claim(h, "lease_second")).jobs
            assert second.attempt_number == 2
            stale = service.Result(first, Receipt(250, "first"), h.clock.now(), 1)
            async with h.sessionmaker() as session, session.begin():
                await service.record(session, [stale], h.settings.delivery, h.worker.rng)
            # The first worker's lease is gone: the message is still the second's.
            assert (await h.message(created["id"]))["status"] == "outbox"
            row = await queued(h.sessionmaker, created["id"])
            assert row is not None and row.lease_token == "lease_second"
            fresh = service.Result(second, Receipt(250, "second"), h.clock.now(), 1)
            async with h.sessionmaker() as session, session.begin():
                await service.record(session, [fresh], h.settings.delivery, h.worker.rng)
            message = await h.message(created["id"])
            assert (message["status"], message["responseBody"]) == ("sent", "second")

    async def test_a_queue_row_whose_message_left_outbox_otherwise_sends_nothing(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            async with h.sessionmaker() as session, session.begin():
                await session.execute(
                    text("UPDATE email_messages SET status = 'failed' WHERE id = :id"),
                    {"id": created["id"]},
                )
            claim = await _claim(h, "lease_x")
            assert (claim.jobs, claim.settled) == ([], 1)
            assert await queued(h.sessionmaker, created["id"]) is None
            assert await h.attempts(created["id"]) == []
            # and the factories keep the same rule when a test sets a status directly
            other = await make_message(h.client, status="outbox")
            await update_message(h.sessionmaker, other["id"], status="sent")
            assert await queued(h.sessionmaker, other["id"]) is None


@pytest.mark.skipif(BACKEND != "postgresql", reason="row versions are PostgreSQL's")
class TestInPlace:
    async def test_claims_update_queue_rows_in_place_and_leave_the_message_row_alone(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            ids = [(await make_message(h.client, status="outbox"))["id"] for _ in range(20)]
            async with h.sessionmaker() as session:
                before: dict[str, str] = dict(
                    (await session.execute(text("SELECT id, xmin::text FROM email_messages"))).all()
                )
            async with h.sessionmaker() as session, session.begin():
                claim = await service.claim(
                    session,
                    now=h.clock.now(),
                    worker="test",
                    token="lease_hot",
                    settings=h.settings.delivery,
                    box=h.worker.box,
                    default_transport="eml",
                    blobs=h.worker.blobs,
                )
                assert len(claim.jobs) == 20
                # Counted within this transaction: every claim was a HOT update (no new index
                # entries), which is what the unindexed lease columns and the fillfactor buy.
                updated, hot = (
                    await session.execute(
                        text(
                            "SELECT pg_stat_get_xact_tuples_updated(c.oid), "
                            "pg_stat_get_xact_tuples_hot_updated(c.oid) "
                            "FROM pg_class AS c WHERE c.relname = 'delivery_queue'"
                        )
                    )
                ).one()
                assert (updated, hot) == (20, 20)
            async with h.sessionmaker() as session:
                after: dict[str, str] = dict(
                    (await session.execute(text("SELECT id, xmin::text FROM email_messages"))).all()
                )
                leased = (await session.scalars(select(QueuedMessage.lease_token))).all()
            assert after == before  # the claim wrote no message row
            assert set(leased) == {"lease_hot"}
            assert set(ids) == {job.message.id for job in claim.jobs}
            async with h.sessionmaker() as session:
                assert await session.scalar(select(EmailMessage.status).limit(1)) == "outbox"
