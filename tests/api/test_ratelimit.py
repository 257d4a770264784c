"""Rate limits per API key (api/ratelimit.py): headers, 429, and one budget across processes."""

import os

import httpx
import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.auth.service import NewOrganization
from postroom.core.clock import SystemClock
from tests.api.conftest import ApiFactory
from tests.factories import message_body

REDIS_URL = "redis://127.0.0.1:6379"


async def _redis_or_skip() -> None:
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as error:
        if os.environ.get("POSTROOM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {error}")
        pytest.skip(f"Redis is not reachable: {error}")
    finally:
        await client.aclose()


class TestInMemory:
    async def test_headers_count_down_and_the_limit_answers_429(
        self, api_factory: ApiFactory, organization: NewOrganization
    ) -> None:
        headers = {"REB-APIKEY": organization.api_key}
        with api_factory(rate_limit_write="3/minute", rate_limit_read="100/minute") as url:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                remaining = []
                for _ in range(3):
                    response = await client.post("/email-messages", json=message_body())
                    assert response.status_code == 201
                    assert response.headers["X-RateLimit-Limit"] == "3"
                    remaining.append(int(response.headers["X-RateLimit-Remaining"]))
                assert remaining == [2, 1, 0]

                refused = await client.post("/email-messages", json=message_body())
                assert refused.status_code == 429
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["status"] == 429
                assert int(refused.headers["Retry-After"]) >= 1
                assert int(refused.headers["X-RateLimit-Retry-After"]) > 1_700_000_000

                # Reads have their own budget.
                listed = await client.get("/email-messages")
                assert listed.status_code == 200
                assert listed.headers["X-RateLimit-Limit"] == "100"

    async def test_each_api_key_has_its_own_budget(
        self,
        api_factory: ApiFactory,
        organization: NewOrganization,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        async with sessionmaker() as session, session.begin():
            other_key = await auth.create_api_key(
                session, organization.organization_id, SystemClock().now(), name="second"
            )
        with api_factory(rate_limit_read="1/minute") as url:
            async with httpx.AsyncClient(base_url=url) as client:
                answers = [
                    (await client.get("/email-messages", headers={"REB-APIKEY": key})).status_code
                    for key in (organization.api_key, organization.api_key, other_key)
                ]
        assert answers == [200, 429, 200]


class TestRedis:
    async def test_two_api_processes_share_one_budget(
        self, api_factory: ApiFactory, organization: NewOrganization
    ) -> None:
        await _redis_or_skip()
        headers = {"REB-APIKEY": organization.api_key}
        limits = {"rate_limit_read": "3/minute", "rate_limit_storage_url": REDIS_URL}
        with api_factory(**limits) as first_url, api_factory(**limits) as second_url:
            async with (
                httpx.AsyncClient(base_url=first_url, headers=headers) as first,
                httpx.AsyncClient(base_url=second_url, headers=headers) as second,
            ):
                answers = [
                    await client.get("/email-messages") for client in (first, second, first, second)
                ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        # The count each process reads back is the shared one.
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert int(refused.headers["X-RateLimit-Retry-After"]) > 1_700_000_000
