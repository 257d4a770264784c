"""HTTP tests of /attachments (files/router.py, files/attachments.py): links from a file to an
email message or the organization, listed with the collection grammar."""

from typing import Any

import httpx
import pytest

from postroom.auth import service as auth
from tests.factories import make_message, upload_file


async def _attach(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/attachments", json=body)


async def make_attachment(
    client: httpx.AsyncClient, file_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    if file_id is None:
        file_id = (await upload_file(client, filename="report.png"))["id"]
    if "relatedId" not in overrides:
        overrides["relatedId"] = (await make_message(client))["id"]
    body = {"fileId": file_id, "relatedType": "email-message", **overrides}
    response = await _attach(client, **body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _invalid_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [f["field"] for f in response.json()["invalidFields"]]


class TestCreate:
    async def test_link_to_a_message_returns_201_with_location_and_every_field(
        self, client: httpx.AsyncClient
    ) -> None:
        file = await upload_file(client, filename="invoice.png")
        message = await make_message(client)
        response = await _attach(
            client, fileId=file["id"], relatedType="email-message", relatedId=message["id"]
        )
        assert response.status_code == 201, response.text
        body = response.json()
        href = f"{client.base_url}/attachments/{body['id']}"
        assert response.headers["location"] == href
        assert body["id"].startswith("att_")
        assert (body["fileId"], body["relatedType"], body["relatedId"]) == (
            file["id"],
            "email-message",
            message["id"],
        )
        assert (body["name"], body["description"]) == ("invoice.png", "")
        assert body["createdTime"] == body["updatedTime"]
        assert body["_links"] == [
            {"rel": "self", "href": href},
            {"rel": "file", "href": f"{client.base_url}/files/{file['id']}"},
        ]

    async def test_name_and_description_are_kept_and_read_only_fields_ignored(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_attachment(
            client, name="Signed contract", description="v2", id="att_mine", createdTime="x"
        )
        assert (created["name"], created["description"]) == ("Signed contract", "v2")
        assert created["id"] != "att_mine"

    async def test_the_organization_itself_can_be_the_related_object(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        created = await make_attachment(
            client, relatedType="organization", relatedId=organization.organization_id
        )
        assert created["relatedType"] == "organization"

    async def test_the_sdk_path_with_a_trailing_slash_creates_too(
        self, client: httpx.AsyncClient
    ) -> None:
        file = await upload_file(client)
        message = await make_message(client)
        response = await client.post(
            "/attachments/",
            json={"fileId": file["id"], "relatedType": "email-message", "relatedId": message["id"]},
        )
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("related_type", ["customer", "invoice", "transaction", "nonsense"])
    async def test_a_type_postroom_has_no_objects_of_is_422_on_related_type(
        self, client: httpx.AsyncClient, related_type: str
    ) -> None:
        file = await upload_file(client)
        response = await _attach(
            client, fileId=file["id"], relatedType=related_type, relatedId="cus_1"
        )
        assert _invalid_fields(response) == ["relatedType"]
        assert "email-message" in response.json()["invalidFields"][0]["message"]

    async def test_an_unknown_message_is_422_on_related_id(self, client: httpx.AsyncClient) -> None:
        file = await upload_file(client)
        response = await _attach(
            client, fileId=file["id"], relatedType="email-message", relatedId="mail_msg_nope"
        )
        assert _invalid_fields(response) == ["relatedId"]

    async def test_another_organization_is_422_on_related_id(
        self, client: httpx.AsyncClient
    ) -> None:
        file = await upload_file(client)
        response = await _attach(
            client, fileId=file["id"], relatedType="organization", relatedId="org_someone_else"
        )
        assert _invalid_fields(response) == ["relatedId"]

    async def test_an_unknown_file_is_422_on_file_id(self, client: httpx.AsyncClient) -> None:
        message = await make_message(client)
        response = await _attach(
            client, fileId="file_nope", relatedType="email-message", relatedId=message["id"]
        )
        assert _invalid_fields(response) == ["fileId"]

    async def test_missing_fields_are_named(self, client: httpx.AsyncClient) -> None:
        response = await _attach(client, relatedType="email-message")
        assert sorted(_invalid_fields(response)) == ["fileId", "relatedId"]


class TestIsolation:
    async def test_a_file_of_another_organization_cannot_be_linked(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await upload_file(other_client)
        message = await make_message(client)
        response = await _attach(
            client, fileId=theirs["id"], relatedType="email-message", relatedId=message["id"]
        )
        assert _invalid_fields(response) == ["fileId"]

    async def test_a_message_of_another_organization_cannot_be_linked_to(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_message(other_client)
        file = await upload_file(client)
        response = await _attach(
            client, fileId=file["id"], relatedType="email-message", relatedId=theirs["id"]
        )
        assert _invalid_fields(response) == ["relatedId"]

    async def test_another_organizations_attachment_is_404_to_get_put_and_delete(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_attachment(other_client)
        url = f"/attachments/{theirs['id']}"
        assert (await client.get(url)).status_code == 404
        mine = await upload_file(client)
        body = {"fileId": mine["id"], "relatedType": "organization", "relatedId": "x"}
        assert (await client.put(url, json=body)).status_code == 404
        assert (await client.delete(url)).status_code == 404
        assert (await other_client.get(url)).status_code == 200
        listed = (await client.get("/attachments", params={"filter": f"id:{theirs['id']}"})).json()
        assert listed == []


class TestReadAndList:
    async def test_get_returns_what_was_created(self, client: httpx.AsyncClient) -> None:
        created = await make_attachment(client)
        response = await client.get(f"/attachments/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created

    async def test_unknown_id_is_404_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/attachments/att_nope")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_list_filters_by_file_and_pages_newest_first(
        self, client: httpx.AsyncClient
    ) -> None:
        file = await upload_file(client)
        links = [await make_attachment(client, file["id"]) for _ in range(3)]
        await make_attachment(client)  # another file's
        response = await client.get(
            "/attachments", params={"filter": f"fileId:{file['id']}", "limit": 2}
        )
        assert response.status_code == 200
        assert response.headers["pagination-total"] == "3"
        assert response.headers["pagination-limit"] == "2"
        ids = {a["id"] for a in links}
        first = [a["id"] for a in response.json()]
        rest = await client.get(
            "/attachments", params={"filter": f"fileId:{file['id']}", "limit": 2, "offset": 2}
        )
        assert set(first + [a["id"] for a in rest.json()]) == ids
        assert len(first) == 2

    async def test_list_filters_by_related_object_and_sorts(
        self, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client)
        a = await make_attachment(client, relatedId=message["id"], name="b-name")
        b = await make_attachment(client, relatedId=message["id"], name="a-name")
        response = await client.get(
            "/attachments",
            params={
                "filter": f"relatedType:email-message;relatedId:{message['id']}",
                "sort": "name",
            },
        )
        assert [x["id"] for x in response.json()] == [b["id"], a["id"]]

    async def test_q_searches_the_name(self, client: httpx.AsyncClient) -> None:
        wanted = await make_attachment(client, name="Quarterly REPORT")
        await make_attachment(client, name="something else")
        response = await client.get("/attachments", params={"q": "quarterly report"})
        assert [x["id"] for x in response.json()] == [wanted["id"]]

    async def test_an_unknown_filter_field_is_422_naming_it(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/attachments", params={"filter": "colour:red"})
        assert _invalid_fields(response) == ["filter.colour"]


class TestPut:
    async def test_put_replaces_the_fields(self, client: httpx.AsyncClient) -> None:
        created = await make_attachment(client, name="old", description="old")
        other_file = await upload_file(client, filename="new.png")
        other_message = await make_message(client)
        response = await client.put(
            f"/attachments/{created['id']}",
            json={
                "fileId": other_file["id"],
                "relatedType": "email-message",
                "relatedId": other_message["id"],
                "description": "new",
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["fileId"], body["relatedId"]) == (other_file["id"], other_message["id"])
        assert (body["name"], body["description"]) == ("new.png", "new")
        assert (await client.get(f"/attachments/{created['id']}")).json() == body

    async def test_put_of_an_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        file = await upload_file(client)
        message = await make_message(client)
        response = await client.put(
            "/attachments/att_nope",
            json={"fileId": file["id"], "relatedType": "email-message", "relatedId": message["id"]},
        )
        assert response.status_code == 404

    async def test_put_with_a_bad_field_is_422_naming_it(self, client: httpx.AsyncClient) -> None:
        created = await make_attachment(client)
        response = await client.put(
            f"/attachments/{created['id']}",
            json={"fileId": "file_nope", "relatedType": "email-message", "relatedId": "x"},
        )
        assert _invalid_fields(response) == ["relatedId"]


class TestDelete:
    async def test_delete_removes_the_link_and_keeps_the_file(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_attachment(client)
        response = await client.delete(f"/attachments/{created['id']}")
        assert (response.status_code, response.content) == (204, b"")
        assert (await client.get(f"/attachments/{created['id']}")).status_code == 404
        assert (await client.get(f"/files/{created['fileId']}")).status_code == 200

    async def test_deleting_a_file_removes_its_links(self, client: httpx.AsyncClient) -> None:
        created = await make_attachment(client)
        assert (await client.delete(f"/files/{created['fileId']}")).status_code == 204
        assert (await client.get(f"/attachments/{created['id']}")).status_code == 404

    async def test_deleting_a_message_removes_the_links_to_it(
        self, client: httpx.AsyncClient
    ) -> None:
        message = await make_message(client)
        created = await make_attachment(client, relatedId=message["id"])
        kept = await make_attachment(client, created["fileId"])
        assert (await client.delete(f"/email-messages/{message['id']}")).status_code == 204
        assert (await client.get(f"/attachments/{created['id']}")).status_code == 404
        assert (await client.get(f"/attachments/{kept['id']}")).status_code == 200
        assert (await client.get(f"/files/{created['fileId']}")).status_code == 200
