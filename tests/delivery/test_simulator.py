"""The simulator credential through the real worker: every documented address ends in its
documented state (README, "The simulator")."""

from datetime import timedelta
from typing import Any

from postroom.delivery.models import QueuedMessage
from postroom.messages.models import EmailMessage
from tests.factories import make_message
from tests.harness import Harness, HarnessFactory


async def _simulator(h: Harness, **fields: Any) -> str:
    response = await h.client.post("/service-credentials/simulator", json=fields)
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["id"]
    return credential_id


async def _send(h: Harness, credential_id: str, to: str, **fields: Any) -> str:
    created = await make_message(
        h.client, status="outbox", credentialHash=credential_id, to=[to], **fields
    )
    message_id: str = created["id"]
    return message_id


class TestOutcomes:
    async def test_delivered_ends_sent_with_a_200(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "delivered@example.com")
            assert await h.deliver() == 1
            record = await h.message(message_id)
            assert (record["status"], record["responseCode"]) == ("sent", 200)
            assert "simulated: nothing was sent" in record["responseBody"]
            assert record["sentTime"] is not None
            [attempt] = await h.attempts(message_id)
            assert (attempt["transport"], attempt["outcome"]) == ("simulator", "sent")
            # The simulated id its answer names, as a provider's would be recorded.
            assert attempt["providerMessageId"].startswith("sim_")
            assert f'"id": "{attempt["providerMessageId"]}"' in record["responseBody"]

    async def test_any_other_address_is_delivered(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "someone@example.com")
            await h.deliver()
            assert (await h.message(message_id))["status"] == "sent"

    async def test_hardfail_fails_at_once_with_a_422(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "hardfail@example.com")
            await h.deliver()
            record = await h.message(message_id)
            assert (record["status"], record["responseCode"]) == ("failed", 422)
            assert "simulated hard failure" in record["responseBody"]
            assert [a["outcome"] for a in await h.attempts(message_id)] == ["permanent"]
            assert await h.retry_all() == 0

    async def test_softfail_is_retried_then_fails_after_the_last_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "softfail@example.com")
            await h.deliver()
            waiting = await h.message(message_id)
            assert (waiting["status"], waiting["responseCode"]) == ("outbox", 503)
            await h.retry_all()
            await h.retry_all()
            record = await h.message(message_id)
            assert (record["status"], record["responseCode"]) == ("failed", 503)
            assert "no success after 3 attempts" in record["responseBody"]
            assert [a["outcome"] for a in await h.attempts(message_id)] == ["transient"] * 3

    async def test_ratelimited_waits_its_retry_after_then_fails_after_the_last_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "ratelimited@example.com")
            before = h.clock.now()
            await h.deliver()
            async with h.sessionmaker() as session:
                row = await session.get(EmailMessage, message_id)
                due = await session.get(QueuedMessage, message_id)
                assert row is not None and due is not None
                # The test backoff is at most 10 s here; the 60 s asked for wins.
                assert due.due_at - before >= timedelta(seconds=60)
            assert (row.status, row.response_code) == ("outbox", 429)
            h.clock.advance(timedelta(seconds=59))
            assert await h.deliver() == 0
            await h.retry_all()
            await h.retry_all()
            record = await h.message(message_id)
            assert (record["status"], record["responseCode"]) == ("failed", 429)
            assert [a["responseCode"] for a in await h.attempts(message_id)] == [429] * 3

    async def test_timeout_is_an_unknown_outcome_retried_until_the_last_attempt(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "timeout@example.com")
            await h.deliver()
            waiting = await h.message(message_id)
            assert waiting["status"] == "outbox"
            assert waiting["responseCode"] is None
            assert "may have been accepted" in waiting["responseBody"]
            await h.retry_all()
            await h.retry_all()
            assert (await h.message(message_id))["status"] == "failed"
            assert [a["outcome"] for a in await h.attempts(message_id)] == ["unknown"] * 3

    async def test_timeout_is_held_for_an_operator_under_the_hold_policy(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(unknown_outcome="hold") as h:
            message_id = await _send(h, await _simulator(h), "timeout@example.com")
            await h.deliver()
            record = await h.message(message_id)
            assert record["status"] == "failed"
            assert "held for an operator" in record["responseBody"]


class TestAddresses:
    async def test_a_plus_tag_and_capitals_still_name_the_scenario(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            message_id = await _send(h, await _simulator(h), "HardFail+order-42@example.com")
            await h.deliver()
            assert (await h.message(message_id))["status"] == "failed"

    async def test_the_first_recipient_naming_a_scenario_decides(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            message_id = await _send(
                h, await _simulator(h), "customer@example.com", cc=["softfail@example.com"],
                bcc=["hardfail@example.com"],
            )  # fmt: skip
            await h.deliver()
            assert (await h.message(message_id))["responseCode"] == 503

    async def test_a_draft_to_a_simulator_is_sent_when_patched(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            credential_id = await _simulator(h)
            draft = await make_message(
                h.client, credentialHash=credential_id, to=["delivered@example.com"]
            )
            assert await h.deliver() == 0
            await h.client.patch(f"/email-messages/{draft['id']}", json={"status": "outbox"})
            await h.deliver()
            assert (await h.message(draft["id"]))["status"] == "sent"
