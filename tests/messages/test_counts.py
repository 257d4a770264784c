"""The kept message counts behind Pagination-Total: exact after every kind of change (create,
send a draft, delivery to sent or failed, delete), under concurrency, and after a recount."""

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.ids import new_id
from postroom.delivery import service as delivery
from postroom.delivery.transports.base import Receipt
from postroom.delivery.worker import Worker
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage, MessageCount, MessageStatus
from tests.factories import make_message, make_org
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually

Sessions = async_sessionmaker[AsyncSession]
Counts = dict[tuple[str, str], int]

# Every filter that Pagination-Total answers from the kept counts.
STATUS_FILTERS: dict[str | None, set[str]] = {
    None: set(MessageStatus),
    "status:draft": {"draft"},
    "status:outbox": {"outbox"},
    "status:sent": {"sent"},
    "status:failed": {"failed"},
    "status:sent,failed": {"sent", "failed"},
    "status:!draft": {"outbox", "sent", "failed"},
    "status:sent,draft;status:!draft": {"sent"},
}


async def kept_counts(sessionmaker: Sessions) -> Counts:
    """The kept counts, shards summed; zeros left out (a status every message left)."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(
                MessageCount.organization_id, MessageCount.status, func.sum(MessageCount.count)
            ).group_by(MessageCount.organization_id, MessageCount.status)
        )
        return {(org, status): int(n) for org, status, n in rows if int(n) != 0}


async def stored_counts(sessionmaker: Sessions) -> Counts:
    """What the kept counts must equal: count(*) of the rows."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(EmailMessage.organization_id, EmailMessage.status, func.count()).group_by(
                EmailMessage.organization_id, EmailMessage.status
            )
        )
        return {(org, status): int(n) for org, status, n in rows}


async def assert_counts_exact(sessionmaker: Sessions) -> None:
    assert await kept_counts(sessionmaker) == await stored_counts(sessionmaker)


async def assert_totals_exact(client: httpx.AsyncClient) -> None:
    """Pagination-Total of each status-only filter equals the messages the full list shows."""
    everything = await client.get("/email-messages", params={"limit": 1000})
    shown = Counter(m["status"] for m in everything.json())
    assert everything.headers["pagination-total"] == str(shown.total())
    for filter, statuses in STATUS_FILTERS.items():
        params: dict[str, str | int] = {"limit": 0}
        if filter is not None:
            params["filter"] = filter
        response = await client.get("/email-messages", params=params)
        assert response.status_code == 200, response.text
        expected = sum(shown[s] for s in statuses)
        assert response.headers["pagination-total"] == str(expected), filter


async def simulator(client: httpx.AsyncClient) -> str:
    response = await client.post("/service-credentials/simulator", json={})
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["id"]
    return credential_id


async def send(client: httpx.AsyncClient, message_id: str) -> httpx.Response:
    return await client.patch(f"/email-messages/{message_id}", json={"status": "outbox"})


class TestPaginationTotal:
    async def test_total_follows_creates_sends_deliveries_and_deletes(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:  # the server-wide transport: .eml files, all sent
            credential = await simulator(h.client)
            drafts = [(await make_message(h.client))["id"] for _ in range(4)]
            await assert_totals_exact(h.client)
            await make_message(h.client, status="outbox")
            failing = await make_message(
                h.client, status="outbox", credentialHash=credential, to=["hardfail@example.com"]
            )
            await assert_totals_exact(h.client)
            assert (await send(h.client, drafts[0])).status_code == 200
            assert (await send(h.client, drafts[0])).status_code == 409  # counted once
            await assert_totals_exact(h.client)
            assert await h.deliver() == 3
            assert (await h.message(failing["id"]))["status"] == "failed"
            await assert_totals_exact(h.client)
            for message_id in (drafts[1], drafts[0], failing["id"]):
                deleted = await h.client.delete(f"/email-messages/{message_id}")
                assert deleted.status_code == 204
            assert (await h.client.delete(f"/email-messages/{drafts[1]}")).status_code == 404
            await assert_totals_exact(h.client)
            await assert_counts_exact(h.sessionmaker)

    async def test_message_failed_at_claim_is_counted_failed(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential = await simulator(h.client)
            await make_message(h.client, status="outbox", credentialHash=credential)
            patched = await h.client.patch(
                f"/service-credentials/simulator/{credential}", json={"status": "inactive"}
            )
            assert patched.status_code == 200, patched.text
            assert await h.deliver() == 1
            await assert_totals_exact(h.client)
            await assert_counts_exact(h.sessionmaker)
            assert list((await kept_counts(h.sessionmaker)).values()) == [1]
            [(_, status)] = await kept_counts(h.sessionmaker)
            assert status == "failed"

    async def test_outcome_of_a_lost_lease_changes_no_count(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            async with h.sessionmaker() as session, session.begin():
                claim = await delivery.claim(
                    session,
                    now=h.clock.now(),
                    worker="stalled-worker",
                    token="lease_stalled",
                    settings=h.settings.delivery,
                    box=h.worker.box,
                    default_transport="eml",
                    blobs=h.worker.blobs,
                )
            [job] = claim.jobs
            # Its lease runs out; another worker claims and sends the message.
            h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
            assert await h.deliver() == 1
            # The stalled worker's outcome comes in late: its guard fails, nothing changes.
            late = delivery.Result(job, Receipt(250, "2.0.0 OK"), h.clock.now(), 5)
            async with h.sessionmaker() as session, session.begin():
                await delivery.record(session, [late], h.settings.delivery, random.Random(1))
            assert (await h.message(created["id"]))["status"] == "sent"
            await assert_totals_exact(h.client)
            await assert_counts_exact(h.sessionmaker)


@asynccontextmanager
async def delivering(h: Harness, workers: int) -> AsyncIterator[None]:
    """`workers` workers running their loops (the harness's own and others like it) until the
    block ends."""
    stop = asyncio.Event()
    running = [h.worker] + [
        Worker(
            sessionmaker=h.sessionmaker,
            settings=h.settings,
            box=h.worker.box,
            transports=h.worker.transports,
            clock=h.clock,
            rng=random.Random(n),
            name=f"test-worker-{n}",
        )
        for n in range(1, workers)
    ]
    tasks = [asyncio.create_task(worker.run(stop)) for worker in running]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


class TestConcurrency:
    async def test_counts_stay_exact_under_concurrent_writes_and_deliveries(
        self, harness_factory: HarnessFactory
    ) -> None:
        rng = random.Random(12)
        async with harness_factory(batch_size=5) as h:
            other = await make_org(h.sessionmaker, "neighbour")
            async with httpx.AsyncClient(
                base_url=h.client.base_url, headers={"REB-APIKEY": other.api_key}, timeout=30
            ) as neighbour:
                clients = [h.client, neighbour]
                credentials = [await simulator(c) for c in clients]

                async def create(n: int) -> tuple[int, dict[str, Any]]:
                    which = n % 2
                    # A third through the server-wide transport: checked without the database,
                    # so written by the API's group commit, both organizations' in one.
                    fields: dict[str, Any] = {}
                    if n % 3:
                        fields["credentialHash"] = credentials[which]
                        if rng.random() < 0.3:
                            fields["to"] = [f"hardfail+{n}@example.com"]  # failed at once
                    if rng.random() < 0.5:
                        fields["status"] = "outbox"
                    return which, await make_message(clients[which], **fields)

                async def churn(which: int, message_id: str) -> None:
                    """A send and a delete of the same message, racing (and the worker)."""
                    client = clients[which]
                    results = await asyncio.gather(
                        send(client, message_id),
                        client.delete(f"/email-messages/{message_id}"),
                    )
                    for response in results:
                        assert response.status_code in (200, 204, 404, 409), response.text

                async with delivering(h, workers=2):
                    created = await asyncio.gather(*(create(n) for n in range(120)))
                    await asyncio.gather(
                        *(churn(which, m["id"]) for which, m in created[::2]),
                        *(create(n) for n in range(120, 160)),
                    )
                    # Whatever churn left in outbox (sent drafts) is delivered too.
                    await asyncio.gather(
                        *(send(clients[which], m["id"]) for which, m in created[1::4])
                    )

                    async def outbox_empty() -> bool:
                        stored = await stored_counts(h.sessionmaker)
                        return not any(status == "outbox" for _, status in stored)

                    await eventually(outbox_empty, timeout=120, what="every message delivered")

                stored = await stored_counts(h.sessionmaker)
                assert {status for _, status in stored} >= {"draft", "sent", "failed"}
                await assert_counts_exact(h.sessionmaker)
                for client in clients:
                    await assert_totals_exact(client)


class TestRecount:
    async def test_recount_rebuilds_counts_lost_or_written_behind_the_services_back(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            for status in ("draft", "draft", "outbox"):
                await make_message(h.client, status=status)
            async with h.sessionmaker() as session, session.begin():
                await session.execute(delete(MessageCount))
            assert await kept_counts(h.sessionmaker) == {}
            async with h.sessionmaker() as session, session.begin():
                await messages.recount(session)
            await assert_counts_exact(h.sessionmaker)
            await assert_totals_exact(h.client)

    async def test_recount_of_one_organization_leaves_the_others(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            await make_message(h.client)
            [(first, _)] = await stored_counts(h.sessionmaker)
            other = await make_org(h.sessionmaker, "other")
            async with h.sessionmaker() as session, session.begin():
                # Counts moved by hand; only those of the organization recounted are repaired.
                await messages.change_counts(
                    session, {(first, "sent"): 2, (other.organization_id, "sent"): 3}
                )
                # A zero is dropped: no row is written (here, none for an unknown organization).
                await messages.change_counts(session, {(new_id("org_"), "sent"): 0})
            async with h.sessionmaker() as session, session.begin():
                await messages.recount(session, other.organization_id)
            assert await kept_counts(h.sessionmaker) == {(first, "draft"): 1, (first, "sent"): 2}
