"""Cancel (messages/schedule.py): PATCH {"status": "draft"} takes a message waiting in `outbox`
back to `draft` while no worker holds it; one being sent, sent or failed is a 409 saying which."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from postroom.delivery import service
from tests.factories import make_message, make_org, queued, update_message
from tests.harness import Harness, HarnessFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server


def _smtp(port: int) -> str:
    return f"smtp://127.0.0.1:{port}"


async def _patch(h: Harness, message_id: str, **body: Any) -> httpx.Response:
    return await h.client.patch(f"/email-messages/{message_id}", json=body)


async def _total(h: Harness, status: str) -> int:
    response = await h.client.get("/email-messages", params={"filter": f"status:{status}"})
    return int(response.headers["Pagination-Total"])


async def _claim(h: Harness, token: str) -> service.Claim:
    """A claim as the worker makes it, with its repository and service, left unrecorded."""
    async with h.sessionmaker() as session, session.begin():
        return await service.claim(
            session,
            now=h.clock.now(),
            worker=h.worker.name,
            token=token,
            settings=h.settings.delivery,
            box=h.worker.box,
            default_transport=h.worker.transports.default.name,
            blobs=h.worker.blobs,
        )


def _conflict(response: httpx.Response, kind: str) -> str:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:postroom:problem:{kind}"
    detail: str = problem["detail"]
    return detail


class TestCancel:
    async def test_cancelling_turns_it_back_into_a_draft_that_can_be_sent_again(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                created = await make_message(h.client, status="outbox")
                cancelled = await _patch(h, created["id"], status="draft")
                assert cancelled.status_code == 200, cancelled.text
                body = cancelled.json()
                assert (body["status"], body["initiatedTime"]) == ("draft", None)
                assert await h.message(created["id"]) == body
                assert await queued(h.sessionmaker, created["id"]) is None
                assert (await _total(h, "outbox"), await _total(h, "draft")) == (0, 1)
                assert await h.deliver() == 0
                assert smtp.received == []

                again = await _patch(h, created["id"], status="outbox")
                assert again.json()["status"] == "outbox"
                assert (await _total(h, "outbox"), await _total(h, "draft")) == (1, 0)
                assert await h.deliver() == 1
                assert (await h.message(created["id"]))["status"] == "sent"
                assert len(smtp.received) == 1
                assert (await _total(h, "sent"), await _total(h, "outbox")) == (1, 0)

    async def test_a_scheduled_message_keeps_its_time_as_a_draft(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            at = (h.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            created = await make_message(h.client, status="outbox", scheduledTime=at)
            cancelled = await _patch(h, created["id"], status="draft")
            assert (cancelled.json()["status"], cancelled.json()["scheduledTime"]) == ("draft", at)

    async def test_its_attempts_are_kept(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                smtp.script("451 4.3.0 try again later")
                created = await make_message(h.client, status="outbox")
                assert await h.deliver() == 1
                assert (await h.message(created["id"]))["status"] == "outbox"  # a retry waits
                cancelled = await _patch(h, created["id"], status="draft")
                assert cancelled.json()["status"] == "draft"
                assert [a["outcome"] for a in await h.attempts(created["id"])] == ["transient"]

                h.clock.advance(timedelta(minutes=1))
                await _patch(h, created["id"], status="outbox")
                assert await h.deliver() == 1
                assert (await h.message(created["id"]))["status"] == "sent"
                attempts = await h.attempts(created["id"])
                # Each send numbers its attempts from 1; they are listed in time.
                assert [(a["outcome"], a["number"]) for a in attempts] == [
                    ("transient", 1),
                    ("sent", 1),
                ]
                assert len(smtp.received) == 1

    async def test_one_a_worker_holds_is_409_and_is_still_delivered_once(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                created = await make_message(h.client, status="outbox")
                claim = await _claim(h, "lease_held")
                [job] = claim.jobs

                detail = _conflict(
                    await _patch(h, created["id"], status="draft"), "message-being-sent"
                )
                assert "sending" in detail
                assert (await h.message(created["id"]))["status"] == "outbox"
                assert (await _total(h, "outbox"), await _total(h, "draft")) == (1, 0)

                # The worker goes on: it sends and records what it claimed.
                result = await h.worker._deliver(job)
                assert await h.worker.record_outcomes([result]) == ["sent"]
                assert (await h.message(created["id"]))["status"] == "sent"
                assert await h.deliver() == 0
                assert len(smtp.received) == 1

    async def test_one_being_sent_by_the_worker_loop_is_409(
        self, harness_factory: HarnessFactory
    ) -> None:
        # The server sits on the DATA reply: the worker is mid-send while the PATCH comes.
        with smtp_server(hold_data_seconds=2) as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                created = await make_message(h.client, status="outbox")
                sending = asyncio.create_task(h.worker.run_once())

                async def attempt_open() -> bool:
                    return len(await h.attempts(created["id"])) == 1

                await eventually(attempt_open, timeout=10, what="the send to start")
                assert not sending.done()
                _conflict(await _patch(h, created["id"], status="draft"), "message-being-sent")
                assert await sending == 1
                assert (await h.message(created["id"]))["status"] == "sent"
                assert len(smtp.received) == 1

    async def test_after_the_lease_ran_out_it_can_be_cancelled(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            [job] = (await _claim(h, "lease_lost")).jobs
            h.clock.advance(timedelta(seconds=h.settings.delivery.lease_seconds + 1))
            cancelled = await _patch(h, created["id"], status="draft")
            assert cancelled.json()["status"] == "draft"
            # The attempt its worker left open may have gone out: it says so.
            [attempt] = await h.attempts(created["id"])
            assert attempt["outcome"] == "unknown"
            # Should that worker come back, its lease is gone: the draft stays a draft.
            result = await h.worker._deliver(job)
            await h.worker.record_outcomes([result])
            assert (await h.message(created["id"]))["status"] == "draft"
            assert (await _total(h, "draft"), await _total(h, "sent")) == (1, 0)

    @pytest.mark.parametrize("status", ["sent", "failed"])
    async def test_a_sent_or_failed_message_is_409_saying_which(
        self, harness_factory: HarnessFactory, status: str
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            await update_message(h.sessionmaker, created["id"], status=status)
            detail = _conflict(await _patch(h, created["id"], status="draft"), "message-settled")
            assert f"is {status}" in detail
            assert (await h.message(created["id"]))["status"] == status

    async def test_a_draft_is_409(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            draft = await make_message(h.client)
            detail = _conflict(await _patch(h, draft["id"], status="draft"), "message-is-draft")
            assert "draft" in detail

    async def test_another_organizations_message_is_404(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            other = await make_org(h.sessionmaker)
            async with httpx.AsyncClient(
                base_url=h.client.base_url, headers={"REB-APIKEY": other.api_key}
            ) as theirs:
                url = f"/email-messages/{created['id']}"
                assert (await theirs.patch(url, json={"status": "draft"})).status_code == 404
                assert (await theirs.patch(url, json={"scheduledTime": None})).status_code == 404
            assert (await h.message(created["id"]))["status"] == "outbox"

    async def test_delete_of_a_message_in_outbox_stays_409(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            response = await h.client.delete(f"/email-messages/{created['id']}")
            assert response.status_code == 409
            assert await queued(h.sessionmaker, created["id"]) is not None


class TestCancelRacingClaims:
    async def test_each_message_is_either_cancelled_unsent_or_sent_once(
        self, harness_factory: HarnessFactory
    ) -> None:
        # Cancels and a worker's claim run at once: each message must end on exactly one side
        # (the conditional DELETE and the claim's SKIP LOCKED; BEGIN IMMEDIATE on SQLite).
        with smtp_server() as smtp:
            # Small batches: claims keep coming while the cancels arrive (newest first, as the
            # worker takes the oldest first), so some of each side win.
            async with harness_factory(smtp_url=_smtp(smtp.port), batch_size=2) as h:
                ids = [(await make_message(h.client, status="outbox"))["id"] for _ in range(20)]
                answers = await asyncio.gather(
                    h.deliver(rounds=30), *(_patch(h, i, status="draft") for i in reversed(ids))
                )
                ids.reverse()
                cancels = dict(zip(ids, answers[1:], strict=True))
                assert {r.status_code for r in cancels.values()} <= {200, 409}
                await h.deliver()
                sent = 0
                for message_id, answer in cancels.items():
                    message = await h.message(message_id)
                    attempts = await h.attempts(message_id)
                    if answer.status_code == 200:
                        assert (message["status"], attempts) == ("draft", [])
                    else:
                        assert message["status"] == "sent"
                        assert [a["outcome"] for a in attempts] == ["sent"]
                        sent += 1
                assert len(smtp.received) == sent
                assert (await _total(h, "sent"), await _total(h, "draft")) == (sent, 20 - sent)
                assert await _total(h, "outbox") == 0
