"""/api-keys and /organizations: the calling key's own organization, and nothing of another's."""

import httpx
import pytest

from postroom.auth import service as auth
from tests.servers.http import CLIENT_TLS


async def _create_key(client: httpx.AsyncClient, description: str = "ci") -> httpx.Response:
    response = await client.post("/api-keys", json={"description": description})
    assert response.status_code == 201, response.text
    return response


class TestApiKeys:
    async def test_create_shows_the_secret_once_and_it_works(
        self, client: httpx.AsyncClient, api_url: str
    ) -> None:
        created = await _create_key(client, "deploy bot")
        body = created.json()
        assert body["id"].startswith("key_")
        assert body["description"] == "deploy bot"
        assert body["type"] == "secret"
        assert body["_links"] == [{"rel": "self", "href": created.headers["Location"]}]
        secret = body["secretKey"]
        async with httpx.AsyncClient(
            base_url=api_url, headers={"REB-APIKEY": secret}, verify=CLIENT_TLS
        ) as http:
            assert (await http.get("/email-messages")).status_code == 200
        again = await client.get(f"/api-keys/{body['id']}")
        assert again.status_code == 200
        assert "secretKey" not in again.json()
        listed = await client.get("/api-keys")
        assert all("secretKey" not in k for k in listed.json())
        assert secret not in listed.text

    async def test_list_holds_the_organizations_live_keys_with_pagination(
        self, client: httpx.AsyncClient
    ) -> None:
        created = (await _create_key(client, "second")).json()
        listed = await client.get("/api-keys", params={"sort": "-createdTime"})
        assert listed.status_code == 200
        assert listed.headers["Pagination-Total"] == "2"
        ids = [k["id"] for k in listed.json()]
        assert created["id"] in ids
        filtered = await client.get("/api-keys", params={"filter": "description:second"})
        assert [k["id"] for k in filtered.json()] == [created["id"]]

    async def test_put_changes_the_description(self, client: httpx.AsyncClient) -> None:
        created = (await _create_key(client)).json()
        # Rebilly's SDK sends back what it read.
        sent = {**created, "description": "renamed"}
        sent.pop("secretKey")
        changed = await client.put(f"/api-keys/{created['id']}", json=sent)
        assert changed.status_code == 200, changed.text
        assert changed.json()["description"] == "renamed"
        assert (await client.get(f"/api-keys/{created['id']}")).json()["description"] == "renamed"

    async def test_delete_revokes_at_once(self, client: httpx.AsyncClient, api_url: str) -> None:
        created = (await _create_key(client)).json()
        async with httpx.AsyncClient(
            base_url=api_url, headers={"REB-APIKEY": created["secretKey"]}, verify=CLIENT_TLS
        ) as http:
            # Seen once, so this process remembers the key...
            assert (await http.get("/email-messages")).status_code == 200
            assert (await client.delete(f"/api-keys/{created['id']}")).status_code == 204
            # ... and forgets it when it revokes it.
            assert (await http.get("/email-messages")).status_code == 401
        assert (await client.get(f"/api-keys/{created['id']}")).status_code == 404
        assert created["id"] not in [k["id"] for k in (await client.get("/api-keys")).json()]

    async def test_the_last_key_is_kept(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        [only] = (await client.get("/api-keys")).json()
        response = await client.delete(f"/api-keys/{only['id']}")
        assert response.status_code == 409
        assert "last API key" in response.json()["detail"]
        assert (await client.get("/email-messages")).status_code == 200

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "description"),
            ({"description": ""}, "description"),
            ({"description": "x", "type": "publishable"}, "type"),
            ({"description": "x", "acl": [{"scope": {}, "permissions": ["*"]}]}, "acl"),
            ({"description": "x", "allowedIps": ["10.0.0.1"]}, "allowedIps"),
        ],
    )
    async def test_bad_input_is_a_problem_naming_the_field(
        self, client: httpx.AsyncClient, body: dict[str, object], field: str
    ) -> None:
        response = await client.post("/api-keys", json=body)
        assert response.status_code == 422, response.text
        assert field in [f["field"] for f in response.json()["invalidFields"]]

    async def test_another_organizations_key_is_not_found(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        created = (await _create_key(other_client)).json()
        assert (await client.get(f"/api-keys/{created['id']}")).status_code == 404
        assert (
            await client.put(f"/api-keys/{created['id']}", json={"description": "mine"})
        ).status_code == 404
        assert (await client.delete(f"/api-keys/{created['id']}")).status_code == 404
        assert created["id"] not in [k["id"] for k in (await client.get("/api-keys")).json()]
        assert (await other_client.get(f"/api-keys/{created['id']}")).status_code == 200

    async def test_sdk_paths_under_the_organization(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        response = await client.get(f"/organizations/{organization.organization_id}/api-keys")
        assert response.status_code == 200
        assert len(response.json()) == 1


class TestOrganizations:
    async def test_list_holds_only_the_keys_organization(
        self,
        client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        organization: auth.NewOrganization,
    ) -> None:
        response = await client.get("/organizations")
        assert response.status_code == 200
        [only] = response.json()
        assert only["id"] == organization.organization_id
        assert only["name"] == "test"
        assert only["_links"][0]["href"].endswith(f"/organizations/{only['id']}")
        assert response.headers["Pagination-Total"] == "1"
        # Rebilly types these as plain strings: absent rather than null.
        assert "country" not in only

    async def test_get_own_and_not_another(
        self,
        client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        organization: auth.NewOrganization,
    ) -> None:
        own = await client.get(f"/organizations/{organization.organization_id}")
        assert own.status_code == 200
        assert own.json()["id"] == organization.organization_id
        [other] = (await other_client.get("/organizations")).json()
        assert (await client.get(f"/organizations/{other['id']}")).status_code == 404
        assert (
            await client.get(f"/organizations/{auth.SYSTEM_ORGANIZATION_ID}")
        ).status_code == 404

    async def test_no_key_is_401(self, anonymous: httpx.AsyncClient) -> None:
        assert (await anonymous.get("/organizations")).status_code == 401
        assert (await anonymous.get("/api-keys")).status_code == 401
