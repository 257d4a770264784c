"""API keys over HTTP: who may call, and that an organization sees only its own messages."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.auth.models import ApiKey
from tests.factories import make_message, make_org, message_body
from tests.harness import HarnessFactory
from tests.servers.http import CLIENT_TLS

UNKNOWN_ORG = "org_01JD0000000000000000000000"


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"]
    assert problem["title"]
    assert problem["detail"]


@pytest.fixture
async def other_org(sessionmaker: async_sessionmaker[AsyncSession]) -> auth.NewOrganization:
    return await make_org(sessionmaker)


@pytest.fixture
async def other_client(
    api_url: str, other_org: auth.NewOrganization
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api_url, headers={"REB-APIKEY": other_org.api_key}, verify=CLIENT_TLS
    ) as http:
        yield http


class TestAuthentication:
    async def test_no_key_is_401_problem(self, anonymous: httpx.AsyncClient) -> None:
        assert_problem(await anonymous.get("/email-messages"), 401)

    async def test_no_key_on_create_is_401_problem(self, anonymous: httpx.AsyncClient) -> None:
        assert_problem(await anonymous.post("/email-messages", json=message_body()), 401)

    async def test_wrong_key_is_401_problem(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/email-messages", headers={"REB-APIKEY": "pr_wrong"})
        assert_problem(response, 401)

    async def test_wrong_bearer_token_is_401_problem(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get(
            "/email-messages", headers={"Authorization": "Bearer pr_wrong"}
        )
        assert_problem(response, 401)

    async def test_empty_key_is_401_problem(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/email-messages", headers={"REB-APIKEY": ""})
        assert_problem(response, 401)

    async def test_reb_apikey_header_authenticates(
        self, anonymous: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        response = await anonymous.get(
            "/email-messages", headers={"REB-APIKEY": organization.api_key}
        )
        assert response.status_code == 200

    async def test_bearer_authorization_authenticates(
        self, anonymous: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        response = await anonymous.post(
            "/email-messages",
            json=message_body(),
            headers={"Authorization": f"Bearer {organization.api_key}"},
        )
        assert response.status_code == 201, response.text

    async def test_health_needs_no_key(self, anonymous: httpx.AsyncClient) -> None:
        assert (await anonymous.get("/healthz")).status_code == 200


class TestOrganizationBoundary:
    async def test_get_of_another_organizations_message_is_404(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_message(other_client)
        assert_problem(await client.get(f"/email-messages/{theirs['id']}"), 404)

    async def test_patch_of_another_organizations_message_is_404_and_leaves_it(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_message(other_client)
        response = await client.patch(f"/email-messages/{theirs['id']}", json={"status": "outbox"})
        assert_problem(response, 404)
        after = await other_client.get(f"/email-messages/{theirs['id']}")
        assert after.json()["status"] == "draft"

    async def test_delete_of_another_organizations_message_is_404_and_keeps_it(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_message(other_client)
        assert_problem(await client.delete(f"/email-messages/{theirs['id']}"), 404)
        assert (await other_client.get(f"/email-messages/{theirs['id']}")).status_code == 200


class TestOrganizationPath:
    async def test_post_under_own_organization_path_is_201_with_location(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        response = await client.post(
            f"/organizations/{organization.organization_id}/email-messages", json=message_body()
        )
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        assert location.startswith("http://127.0.0.1:")
        assert location.endswith(f"/email-messages/{response.json()['id']}")
        fetched = await client.get(location)
        assert fetched.status_code == 200
        assert fetched.json() == response.json()

    async def test_get_under_own_organization_path_lists_and_reads(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        created = await make_message(client)
        prefix = f"/organizations/{organization.organization_id}/email-messages"
        listed = await client.get(prefix)
        assert listed.status_code == 200
        assert [m["id"] for m in listed.json()] == [created["id"]]
        assert listed.headers["pagination-total"] == "1"
        one = await client.get(f"{prefix}/{created['id']}")
        assert one.status_code == 200
        assert one.json()["id"] == created["id"]

    async def test_patch_and_delete_under_own_organization_path(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        prefix = f"/organizations/{organization.organization_id}/email-messages"
        draft = await make_message(client)
        sent = await client.patch(f"{prefix}/{draft['id']}", json={"status": "outbox"})
        assert sent.status_code == 200
        deletable = await make_message(client)
        assert (await client.delete(f"{prefix}/{deletable['id']}")).status_code == 204

    async def test_another_organizations_path_is_404_problem(
        self, client: httpx.AsyncClient, other_org: auth.NewOrganization
    ) -> None:
        prefix = f"/organizations/{other_org.organization_id}/email-messages"
        assert_problem(await client.get(prefix), 404)
        assert_problem(await client.post(prefix, json=message_body()), 404)

    async def test_another_organizations_path_does_not_reveal_its_messages(
        self,
        client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        other_org: auth.NewOrganization,
    ) -> None:
        theirs = await make_message(other_client)
        response = await client.get(
            f"/organizations/{other_org.organization_id}/email-messages/{theirs['id']}"
        )
        assert_problem(response, 404)

    async def test_unknown_organization_path_is_404_problem(
        self, client: httpx.AsyncClient
    ) -> None:
        assert_problem(await client.get(f"/organizations/{UNKNOWN_ORG}/email-messages"), 404)


class TestKeyCache:
    async def test_a_revoked_key_works_for_at_most_the_cache_time(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            assert (await h.client.get("/email-messages")).status_code == 200  # now remembered
            async with h.sessionmaker() as session, session.begin():
                await session.execute(update(ApiKey).values(revoked_at=h.clock.now()))
            assert (await h.client.get("/email-messages")).status_code == 200
            h.clock.advance(timedelta(seconds=h.settings.limits.api_key_cache_seconds))
            assert_problem(await h.client.get("/email-messages"), 401)

    def test_only_valid_keys_for_ttl_and_at_most_size(self) -> None:
        now = datetime(2026, 12, 4, tzinfo=UTC)
        cache = auth.CallerCache(timedelta(seconds=10), size=2)
        callers = [auth.Caller(f"key_{n}", f"org_{n}") for n in range(3)]
        for n, caller in enumerate(callers):
            cache.put(f"hash{n}", caller, now)
        assert cache.get("hash0", now) is None  # the oldest made room
        assert cache.get("hash2", now + timedelta(seconds=9)) == callers[2]
        assert cache.get("hash2", now + timedelta(seconds=10)) is None
        off = auth.CallerCache(timedelta(0))
        off.put("hash", callers[0], now)
        assert off.get("hash", now) is None
