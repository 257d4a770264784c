"""HTTP tests of messages/router.py: /email-messages."""

import httpx

from tests.factories import make_message, message_body


class TestCreate:
    async def test_create_returns_201_with_location_and_every_field(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/email-messages", json=message_body())
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == f"{client.base_url}/email-messages/{body['id']}"
        assert body["status"] == "draft"
        assert body["sentTime"] is None
        assert body["_links"] == [{"rel": "self", "href": response.headers["location"]}]

    async def test_get_returns_created_message(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client)
        response = await client.get(f"/email-messages/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created
