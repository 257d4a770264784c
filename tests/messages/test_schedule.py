"""Scheduled send (messages/schedule.py): scheduledTime on create, on the PATCH that sends a
draft and alone; the message waits in `outbox` with no attempt before its time."""

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from postroom.core.clock import SystemClock
from postroom.delivery import service
from tests.factories import make_message, queued, update_message
from tests.harness import Harness, HarnessFactory
from tests.messages.test_router import invalid_fields
from tests.servers.smtp import smtp_server


def wire(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _smtp(port: int) -> str:
    return f"smtp://127.0.0.1:{port}"


async def _patch(h: Harness, message_id: str, **body: Any) -> httpx.Response:
    return await h.client.patch(f"/email-messages/{message_id}", json=body)


class TestScheduledSend:
    async def test_a_scheduled_message_is_not_attempted_before_its_time_and_is_sent_after(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                at = h.clock.now().replace(microsecond=0) + timedelta(hours=1)
                created = await make_message(h.client, status="outbox", scheduledTime=wire(at))
                assert (created["status"], created["scheduledTime"]) == ("outbox", wire(at))
                row = await queued(h.sessionmaker, created["id"])
                assert row is not None and row.due_at == at

                assert await h.deliver() == 0
                h.clock.advance(timedelta(minutes=59, seconds=59))
                assert await h.deliver() == 0
                assert await h.attempts(created["id"]) == []
                assert smtp.received == []

                h.clock.advance(timedelta(seconds=1))
                assert await h.deliver() == 1
                message = await h.message(created["id"])
                assert (message["status"], message["scheduledTime"]) == ("sent", wire(at))
                [received] = smtp.received
                # Dated when it was due to go, not when it was queued.
                assert parsedate_to_datetime(received.message["Date"]) == at

    async def test_a_draft_sent_with_a_scheduled_time_waits_for_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                draft = await make_message(h.client)
                assert draft["scheduledTime"] is None
                at = h.clock.now() + timedelta(minutes=10)
                sent = await _patch(h, draft["id"], status="outbox", scheduledTime=wire(at))
                assert sent.status_code == 200, sent.text
                assert sent.json()["scheduledTime"] == wire(at)
                assert await h.deliver() == 0
                h.clock.advance(timedelta(minutes=11))
                assert await h.deliver() == 1
                assert len(smtp.received) == 1

    async def test_a_draft_keeps_its_scheduled_time_when_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            at = h.clock.now().replace(microsecond=0) + timedelta(days=2)
            draft = await make_message(h.client, scheduledTime=wire(at))
            assert (draft["status"], draft["scheduledTime"]) == ("draft", wire(at))
            sent = await _patch(h, draft["id"], status="outbox")
            assert sent.json()["scheduledTime"] == wire(at)
            row = await queued(h.sessionmaker, draft["id"])
            assert row is not None and row.due_at == at

    async def test_sending_a_draft_whose_time_has_passed_is_422_until_given_another(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            at = h.clock.now() + timedelta(minutes=5)
            draft = await make_message(h.client, scheduledTime=wire(at))
            h.clock.advance(timedelta(minutes=10))
            refused = await _patch(h, draft["id"], status="outbox")
            assert invalid_fields(refused) == ["scheduledTime"]
            assert "passed" in refused.json()["detail"]
            assert (await h.message(draft["id"]))["status"] == "draft"
            now = await _patch(h, draft["id"], status="outbox", scheduledTime=None)
            assert (now.json()["status"], now.json()["scheduledTime"]) == ("outbox", None)
            assert await h.deliver() == 1

    async def test_a_time_just_past_is_now(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            just_past = h.clock.now() - timedelta(seconds=30)
            created = await make_message(h.client, status="outbox", scheduledTime=wire(just_past))
            assert await h.deliver() == 1
            assert (await h.message(created["id"]))["status"] == "sent"

    async def test_a_fraction_of_a_second_rounds_up(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            at = h.clock.now().replace(microsecond=0) + timedelta(minutes=1)
            given = at.strftime("%Y-%m-%dT%H:%M:%S") + ".250+00:00"
            created = await make_message(h.client, status="outbox", scheduledTime=given)
            assert created["scheduledTime"] == wire(at + timedelta(seconds=1))
            h.clock.advance(at - h.clock.now())
            assert await h.deliver() == 0  # due at the whole second after `given`
            h.clock.advance(timedelta(seconds=1))
            assert await h.deliver() == 1

    async def test_the_setting_bounds_how_far_ahead(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory(max_schedule_days=1) as h:
            too_far = h.clock.now() + timedelta(days=1, minutes=1)
            response = await h.client.post(
                "/email-messages",
                json={**_body(), "status": "outbox", "scheduledTime": wire(too_far)},
            )
            assert invalid_fields(response) == ["scheduledTime"]
            assert "at most 1 days ahead" in response.json()["detail"]
            within = await make_message(
                h.client, scheduledTime=wire(h.clock.now() + timedelta(hours=23))
            )
            assert within["scheduledTime"] is not None


def _body() -> dict[str, Any]:
    return {
        "from": "sender@example.com",
        "to": ["recipient@example.com"],
        "subject": "Scheduled",
        "text": "text",
        "html": "<p>html</p>",
    }


NOW = SystemClock().now()
OUT_OF_RANGE = {
    "past": wire(NOW - timedelta(minutes=10)),
    "too far ahead": wire(NOW + timedelta(days=31)),
    "no offset": (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    "a date alone": (NOW + timedelta(days=1)).strftime("%Y-%m-%d"),
    "a unix time": int((NOW + timedelta(hours=1)).timestamp()),
    "no such day": "2030-02-30T10:00:00Z",
    "not a time": "tomorrow",
}


class TestOutOfRange:
    @pytest.mark.parametrize("value", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
    @pytest.mark.parametrize("status", ["outbox", "draft"])
    async def test_create_is_422_naming_scheduled_time(
        self, client: httpx.AsyncClient, value: object, status: str
    ) -> None:
        response = await client.post(
            "/email-messages", json={**_body(), "status": status, "scheduledTime": value}
        )
        assert invalid_fields(response) == ["scheduledTime"]

    @pytest.mark.parametrize("value", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
    async def test_sending_a_draft_is_422_naming_scheduled_time(
        self, client: httpx.AsyncClient, value: object
    ) -> None:
        draft = await make_message(client)
        url = f"/email-messages/{draft['id']}"
        response = await client.patch(url, json={"status": "outbox", "scheduledTime": value})
        assert invalid_fields(response) == ["scheduledTime"]
        assert (await client.get(url)).json()["status"] == "draft"

    @pytest.mark.parametrize("value", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
    async def test_rescheduling_is_422_naming_scheduled_time(
        self, client: httpx.AsyncClient, value: object
    ) -> None:
        later = wire(SystemClock().now() + timedelta(days=1))
        created = await make_message(client, status="outbox", scheduledTime=later)
        url = f"/email-messages/{created['id']}"
        response = await client.patch(url, json={"scheduledTime": value})
        assert invalid_fields(response) == ["scheduledTime"]
        assert (await client.get(url)).json()["scheduledTime"] == later


class TestReschedule:
    async def test_an_earlier_time_sends_it_earlier(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp(smtp.port)) as h:
                at = h.clock.now() + timedelta(hours=2)
                created = await make_message(h.client, status="outbox", scheduledTime=wire(at))
                sooner = h.clock.now() + timedelta(minutes=10)
                moved = await _patch(h, created["id"], scheduledTime=wire(sooner))
                assert moved.status_code == 200, moved.text
                assert (moved.json()["status"], moved.json()["scheduledTime"]) == (
                    "outbox",
                    wire(sooner),
                )
                h.clock.advance(timedelta(minutes=11))
                assert await h.deliver() == 1
                assert len(smtp.received) == 1

    async def test_a_later_time_holds_it_back(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            created = await make_message(
                h.client, status="outbox", scheduledTime=wire(h.clock.now() + timedelta(minutes=5))
            )
            later = h.clock.now() + timedelta(hours=3)
            assert (await _patch(h, created["id"], scheduledTime=wire(later))).status_code == 200
            h.clock.advance(timedelta(minutes=6))
            assert await h.deliver() == 0
            h.clock.advance(timedelta(hours=3))
            assert await h.deliver() == 1

    async def test_null_sends_it_at_once(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            created = await make_message(
                h.client, status="outbox", scheduledTime=wire(h.clock.now() + timedelta(days=3))
            )
            moved = await _patch(h, created["id"], scheduledTime=None)
            assert moved.json()["scheduledTime"] is None
            assert await h.deliver() == 1
            assert (await h.message(created["id"]))["status"] == "sent"

    async def test_a_draft_takes_a_time_for_when_it_is_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            draft = await make_message(h.client)
            at = h.clock.now().replace(microsecond=0) + timedelta(hours=1)
            moved = await _patch(h, draft["id"], scheduledTime=wire(at))
            assert (moved.json()["status"], moved.json()["scheduledTime"]) == ("draft", wire(at))
            await _patch(h, draft["id"], status="outbox")
            assert await h.deliver() == 0

    async def test_a_message_a_worker_holds_is_409(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            async with h.sessionmaker() as session, session.begin():
                claim = await service.claim(
                    session,
                    now=h.clock.now(),
                    worker="test",
                    token="lease_held",
                    settings=h.settings.delivery,
                    box=h.worker.box,
                    default_transport="eml",
                    blobs=h.worker.blobs,
                )
            assert len(claim.jobs) == 1
            later = wire(h.clock.now() + timedelta(hours=1))
            response = await _patch(h, created["id"], scheduledTime=later)
            assert response.status_code == 409, response.text
            assert response.json()["type"].endswith(":message-being-sent")
            assert (await h.message(created["id"]))["scheduledTime"] is None

    @pytest.mark.parametrize("status", ["sent", "failed"])
    async def test_a_sent_or_failed_message_is_409(
        self, harness_factory: HarnessFactory, status: str
    ) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            await update_message(h.sessionmaker, created["id"], status=status)
            later = wire(h.clock.now() + timedelta(hours=1))
            response = await _patch(h, created["id"], scheduledTime=later)
            assert response.status_code == 409, response.text
            assert response.json()["type"].endswith(":message-settled")
            assert status in response.json()["detail"]
