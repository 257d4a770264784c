"""HTTP tests of messages/router.py: /email-messages."""

import httpx
import pytest

from tests.factories import make_message, message_body, pdf_bytes, upload_file


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


class TestAttachments:
    async def test_attached_files_are_kept_on_the_message(self, client: httpx.AsyncClient) -> None:
        file = await upload_file(client)
        attachments = [{"resourceType": "file", "resourceId": file["id"]}]
        created = await make_message(client, attachments=attachments)
        assert created["attachments"] == attachments

    @pytest.mark.parametrize(
        ("attachment", "field"),
        [
            ({"resourceType": "invoice", "resourceId": "in_1"}, "attachments.1.resourceType"),
            ({"resourceType": "file", "resourceId": "file_nope"}, "attachments.1.resourceId"),
            ({"resourceType": "file"}, "attachments.1.resourceId"),
        ],
    )
    async def test_an_attachment_that_is_not_a_file_of_ours_is_422_naming_it(
        self, client: httpx.AsyncClient, attachment: dict[str, str], field: str
    ) -> None:
        file = await upload_file(client)
        response = await client.post(
            "/email-messages",
            json=message_body(
                attachments=[{"resourceType": "file", "resourceId": file["id"]}, attachment]
            ),
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [field]

    async def test_attachments_over_the_message_limit_are_422(
        self, limited_client: httpx.AsyncClient
    ) -> None:
        # Each file is under the 64 KiB file limit; together they pass the 100 KiB message limit.
        first = await upload_file(limited_client, pdf_bytes(60_000))
        second = await upload_file(limited_client, pdf_bytes(60_000))
        response = await limited_client.post(
            "/email-messages",
            json=message_body(
                status="outbox",
                attachments=[
                    {"resourceType": "file", "resourceId": first["id"]},
                    {"resourceType": "file", "resourceId": second["id"]},
                ],
            ),
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == ["attachments"]
        assert (await limited_client.get("/email-messages")).json() == []
