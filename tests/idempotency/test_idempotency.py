"""Idempotency-Key over HTTP: replays, refusals, scope, concurrency, retention."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth.service import NewOrganization
from postroom.idempotency.models import IdempotencyKey
from postroom.messages.models import EmailMessage
from tests.databases import BACKEND
from tests.factories import make_message, make_org, message_body
from tests.harness import HarnessFactory


async def _count(sessionmaker: async_sessionmaker[AsyncSession], organization_id: str) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(EmailMessage.organization_id == organization_id)
        )
    return int(count or 0)


class TestReplay:
    async def test_same_key_and_body_returns_the_first_answer_and_creates_nothing(
        self,
        client: httpx.AsyncClient,
        organization: NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        headers = {"Idempotency-Key": "order-42-receipt"}
        first = await client.post("/email-messages", json=message_body(), headers=headers)
        again = await client.post("/email-messages", json=message_body(), headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert await _count(sessionmaker, organization.organization_id) == 1

    async def test_same_key_with_another_body_is_422(self, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": "k-1"}
        await client.post("/email-messages", json=message_body(), headers=headers)
        other = await client.post(
            "/email-messages", json=message_body(subject="Other"), headers=headers
        )
        assert other.status_code == 422
        assert other.json()["invalidFields"][0]["field"] == "Idempotency-Key"

    async def test_a_failed_request_does_not_use_up_its_key(
        self, client: httpx.AsyncClient
    ) -> None:
        headers = {"Idempotency-Key": "retry-after-fix"}
        invalid = await client.post("/email-messages", json={"to": []}, headers=headers)
        assert invalid.status_code == 422
        # A different body under the same key is fine: nothing was stored for the failure.
        valid = await client.post("/email-messages", json=message_body(), headers=headers)
        assert valid.status_code == 201

    async def test_patch_that_sends_a_draft_replays_instead_of_409(
        self, client: httpx.AsyncClient
    ) -> None:
        draft = await make_message(client)
        headers = {"Idempotency-Key": "send-it"}
        url = f"/email-messages/{draft['id']}"
        first = await client.patch(url, json={"status": "outbox"}, headers=headers)
        again = await client.patch(url, json={"status": "outbox"}, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        without_key = await client.patch(url, json={"status": "outbox"})
        assert without_key.status_code == 409

    async def test_keys_are_scoped_to_the_organization(
        self,
        client: httpx.AsyncClient,
        anonymous: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        other = await make_org(sessionmaker)
        headers = {"Idempotency-Key": "shared-name"}
        mine = await client.post("/email-messages", json=message_body(), headers=headers)
        theirs = await anonymous.post(
            "/email-messages",
            json=message_body(),
            headers={**headers, "REB-APIKEY": other.api_key},
        )
        assert mine.status_code == theirs.status_code == 201
        assert mine.json()["id"] != theirs.json()["id"]
        assert "Idempotent-Replayed" not in theirs.headers

    async def test_an_overlong_key_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(), headers={"Idempotency-Key": "k" * 256}
        )
        assert response.status_code == 422

    async def test_an_expired_key_is_forgotten(
        self,
        client: httpx.AsyncClient,
        organization: NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        headers = {"Idempotency-Key": "old"}
        first = await client.post("/email-messages", json=message_body(), headers=headers)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.organization_id == organization.organization_id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        again = await client.post("/email-messages", json=message_body(), headers=headers)
        assert again.status_code == 201
        assert again.json()["id"] != first.json()["id"]


class TestConcurrency:
    async def test_twenty_concurrent_posts_with_one_key_create_one_message(
        self,
        client: httpx.AsyncClient,
        organization: NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        headers = {"Idempotency-Key": "burst"}
        answers = await asyncio.gather(
            *(
                client.post("/email-messages", json=message_body(), headers=headers)
                for _ in range(20)
            )
        )
        assert await _count(sessionmaker, organization.organization_id) == 1
        created = {a.json()["id"] for a in answers if a.status_code == 201}
        assert len(created) == 1
        # The rest either waited and got the first answer, or came while it ran: 409.
        assert {a.status_code for a in answers} <= {201, 409}

    @pytest.mark.skipif(BACKEND != "postgresql", reason="SQLite serialises writers instead")
    async def test_a_request_while_the_first_is_still_running_is_409(
        self,
        client: httpx.AsyncClient,
        organization: NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        # Hold the key's lock as an unfinished first request would.
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:org), hashtext(:key))"),
                {"org": organization.organization_id, "key": "in-flight"},
            )
            response = await client.post(
                "/email-messages", json=message_body(), headers={"Idempotency-Key": "in-flight"}
            )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert await _count(sessionmaker, organization.organization_id) == 0


class TestRetention:
    async def test_worker_housekeeping_drops_answers_past_their_retention(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            headers = {"Idempotency-Key": "kept-a-while"}
            await h.client.post("/email-messages", json=message_body(), headers=headers)
            await h.worker.housekeeping()
            async with h.sessionmaker() as session:
                assert await session.scalar(select(func.count(IdempotencyKey.id))) == 1
            h.clock.advance(timedelta(hours=h.settings.limits.idempotency_retention_hours + 1))
            await h.worker.housekeeping()
            async with h.sessionmaker() as session:
                assert await session.scalar(select(func.count(IdempotencyKey.id))) == 0
