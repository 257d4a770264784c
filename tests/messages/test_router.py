"""HTTP tests of messages/router.py: /email-messages."""

import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.contract.reference import properties
from tests.factories import make_message, message_body, pdf_bytes, update_message, upload_file

# Every property of components/schemas/EmailMessage.yaml: present in every response.
PROPERTIES = properties("EmailMessage.yaml")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _long_address(length: int) -> str:
    """A well-formed address of `length` characters: a 64-character local part (the most
    RFC 5321 allows) and domain labels of at most 63."""
    last = length - (64 + 1 + 63 + 1 + 63 + 1 + 4)
    return "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * last]) + ".com"


def invalid_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    return [f["field"] for f in problem["invalidFields"]]


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"]
    assert problem["title"]


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

    async def test_links_follow_each_requests_host(self, client: httpx.AsyncClient) -> None:
        # The base URL is remembered per host (api/wire.py): another Host gets its own links.
        for host in ("mail.example.com", "other.example.com:8443", "mail.example.com"):
            response = await client.post(
                "/email-messages", json=message_body(), headers={"Host": host}
            )
            assert response.status_code == 201, response.text
            expected = f"http://{host}/email-messages/{response.json()['id']}"
            assert response.headers["location"] == expected
            assert response.json()["_links"][0]["href"] == expected

    async def test_location_is_an_absolute_url(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body())
        location = httpx.URL(response.headers["location"])
        assert location.scheme == "http"
        assert location.host == "127.0.0.1"
        assert location.port == client.base_url.port
        assert location.path == f"/email-messages/{response.json()['id']}"

    async def test_every_property_is_present_with_null_or_empty_list_when_unset(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await make_message(client)
        assert body.keys() >= PROPERTIES
        assert body["metadata"] is None
        assert body["credentialHash"] is None
        assert body["cc"] == []
        assert body["bcc"] == []
        assert body["attachments"] == []
        assert body["responseCode"] is None
        assert body["responseBody"] is None
        assert body["initiatedTime"] is None
        assert body["sentTime"] is None

    async def test_defaults_are_a_draft_with_prefixed_id_and_utc_times(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await make_message(client)
        assert body["status"] == "draft"
        assert body["id"].startswith("mail_msg_")
        assert RFC3339_UTC.match(body["createdTime"])
        assert body["updatedTime"] == body["createdTime"]

    async def test_every_field_round_trips(self, client: httpx.AsyncClient) -> None:
        invoice = await upload_file(client, pdf_bytes(), filename="invoice.pdf")
        logo = await upload_file(client)
        given: dict[str, Any] = {
            "from": "billing@example.com",
            "to": ["alice@example.com", "bob@example.org"],
            "cc": ["carol@example.com"],
            "bcc": ["dave@example.net", "erin@example.net"],
            "subject": "Your invoice #42 — thank you",
            "text": "Line one\nLine two",
            "html": "<h1>Invoice</h1><p>Thank you</p>",
            "metadata": {"eventType": "invoice-issued", "invoiceId": "in_42"},
            "attachments": [
                {"resourceType": "file", "resourceId": invoice["id"]},
                {"resourceType": "file", "resourceId": logo["id"]},
            ],
        }
        created = await make_message(client, **given)
        fetched = (await client.get(f"/email-messages/{created['id']}")).json()
        for body in (created, fetched):
            assert {name: body[name] for name in given} == given

    async def test_credential_hash_round_trips(self, client: httpx.AsyncClient) -> None:
        # A message may only name a credential of its organization, so make one first.
        credential = await client.post(
            "/service-credentials/smtp", json={"host": "smtp.example.com", "port": 2525}
        )
        assert credential.status_code == 201, credential.text
        credential_id = credential.json()["id"]
        created = await make_message(client, credentialHash=credential_id)
        fetched = (await client.get(f"/email-messages/{created['id']}")).json()
        assert created["credentialHash"] == fetched["credentialHash"] == credential_id

    async def test_read_only_fields_sent_by_the_client_are_ignored(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/email-messages",
            json=message_body(
                id="mail_msg_CHOSEN_BY_CLIENT",
                responseCode=250,
                responseBody="250 OK queued",
                initiatedTime="2001-01-01T00:00:00Z",
                sentTime="2001-01-01T00:00:01Z",
                createdTime="2001-01-01T00:00:00Z",
                updatedTime="2001-01-01T00:00:00Z",
                _links=[{"rel": "self", "href": "http://evil.example/x"}],
            ),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["id"] != "mail_msg_CHOSEN_BY_CLIENT"
        assert body["id"].startswith("mail_msg_")
        assert body["responseCode"] is None
        assert body["responseBody"] is None
        assert body["initiatedTime"] is None
        assert body["sentTime"] is None
        assert not body["createdTime"].startswith("2001")
        assert not body["updatedTime"].startswith("2001")
        assert body["_links"] == [{"rel": "self", "href": response.headers["location"]}]

    async def test_status_outbox_on_create_sets_initiated_time(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await make_message(client, status="outbox")
        assert body["status"] == "outbox"
        assert RFC3339_UTC.match(body["initiatedTime"])
        assert body["initiatedTime"] == body["createdTime"]

    async def test_status_draft_on_create_is_accepted(self, client: httpx.AsyncClient) -> None:
        body = await make_message(client, status="draft")
        assert body["status"] == "draft"
        assert body["initiatedTime"] is None

    @pytest.mark.parametrize("status", ["sent", "failed", "queued", ""])
    async def test_status_other_than_draft_or_outbox_on_create_is_422(
        self, client: httpx.AsyncClient, status: str
    ) -> None:
        response = await client.post("/email-messages", json=message_body(status=status))
        assert invalid_fields(response) == ["status"]


class TestCreateValidation:
    @pytest.mark.parametrize("field", ["from", "to", "subject", "text", "html"])
    async def test_missing_required_field_is_422(
        self, client: httpx.AsyncClient, field: str
    ) -> None:
        body = message_body()
        del body[field]
        response = await client.post("/email-messages", json=body)
        assert invalid_fields(response) == [field]

    async def test_invalid_from_address_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(**{"from": "nobody"}))
        assert invalid_fields(response) == ["from"]

    @pytest.mark.parametrize("field", ["to", "cc", "bcc"])
    async def test_invalid_recipient_address_is_422_naming_its_index(
        self, client: httpx.AsyncClient, field: str
    ) -> None:
        addresses = ["good@example.com", "not an address"]
        response = await client.post("/email-messages", json=message_body(**{field: addresses}))
        assert invalid_fields(response) == [f"{field}.1"]

    async def test_an_address_refused_once_is_refused_alike_again(
        self, client: httpx.AsyncClient
    ) -> None:
        # Verdicts are remembered (messages/schemas.py); the second answer comes from there.
        body = message_body(to=["twice@@example.com"])
        first, second = [await client.post("/email-messages", json=body) for _ in range(2)]
        assert invalid_fields(first) == invalid_fields(second) == ["to.0"]
        assert first.json()["invalidFields"] == second.json()["invalidFields"]
        assert "not a valid email address" in first.json()["invalidFields"][0]["message"]

    async def test_invalid_first_to_address_is_named_to_0(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(to=["@example.com"]))
        assert invalid_fields(response) == ["to.0"]

    async def test_address_of_exactly_254_characters_is_accepted(
        self, client: httpx.AsyncClient
    ) -> None:
        address = _long_address(254)
        body = await make_message(client, **{"from": address}, to=[address])
        assert body["from"] == address
        assert body["to"] == [address]

    @pytest.mark.parametrize(("field", "path"), [("from", "from"), ("to", "to.0")])
    async def test_address_longer_than_254_characters_is_422(
        self, client: httpx.AsyncClient, field: str, path: str
    ) -> None:
        address = _long_address(255)
        value: str | list[str] = address if field == "from" else [address]
        response = await client.post("/email-messages", json=message_body(**{field: value}))
        assert invalid_fields(response) == [path]

    async def test_subject_of_exactly_998_characters_is_accepted(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await make_message(client, subject="s" * 998)
        assert body["subject"] == "s" * 998

    async def test_subject_longer_than_998_characters_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/email-messages", json=message_body(subject="s" * 999))
        assert invalid_fields(response) == ["subject"]

    @pytest.mark.parametrize(
        "subject",
        [
            "Hello\r\nBcc: victim@example.com",
            "a\rb",
            "a\nb",
            "a\x1b[2Jb",
            "a\x00b",
            "a\x7fb",
            "\x01",
        ],
    )
    async def test_subject_with_a_line_break_or_control_character_is_422(
        self, client: httpx.AsyncClient, subject: str
    ) -> None:
        response = await client.post("/email-messages", json=message_body(subject=subject))
        assert invalid_fields(response) == ["subject"]

    async def test_subject_may_hold_a_tab(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(subject="a\tb"))
        assert response.status_code == 201, response.text

    async def test_metadata_key_with_a_control_character_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/email-messages", json=message_body(metadata={"k\x1bey": "v"})
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"].startswith("metadata")

    async def test_empty_to_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(to=[]))
        assert invalid_fields(response) == ["to"]

    async def test_metadata_with_a_non_string_value_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(metadata={"ok": "yes", "count": 1})
        )
        assert invalid_fields(response) == ["metadata.count"]

    async def test_attachment_without_resource_id_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(attachments=[{"resourceType": "file"}])
        )
        assert invalid_fields(response) == ["attachments.0.resourceId"]

    async def test_credential_hash_longer_than_50_characters_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/email-messages", json=message_body(credentialHash="c" * 51))
        assert invalid_fields(response) == ["credentialHash"]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"subject": "a\u0000b"}, "subject"),
            ({"text": "a\u0000b"}, "text"),
            ({"html": "\u0000"}, "html"),
            ({"metadata": {"k": "v\u0000"}}, "metadata.k"),
            (
                {"attachments": [{"resourceType": "file", "resourceId": "f\u0000"}]},
                "attachments.0.resourceId",
            ),
        ],
    )
    async def test_nul_character_is_422(
        self, client: httpx.AsyncClient, overrides: dict[str, Any], field: str
    ) -> None:
        # PostgreSQL text cannot hold U+0000; both databases refuse it the same way.
        response = await client.post("/email-messages", json=message_body(**overrides))
        assert invalid_fields(response) == [field]

    async def test_every_invalid_field_is_named_at_once(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json={"from": "nobody", "to": [], "text": "t", "html": "h"}
        )
        assert sorted(invalid_fields(response)) == ["from", "subject", "to"]


class TestGet:
    async def test_get_returns_created_message(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client)
        response = await client.get(f"/email-messages/{created['id']}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == created

    async def test_get_unknown_id_is_404_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages/mail_msg_01JD0000000000000000000000")
        assert_problem(response, 404)


class TestSend:
    async def test_patch_outbox_on_draft_sends_it(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client)
        response = await client.patch(f"/email-messages/{created['id']}", json={"status": "outbox"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "outbox"
        assert RFC3339_UTC.match(body["initiatedTime"])
        assert body["id"] == created["id"]
        assert (await client.get(f"/email-messages/{created['id']}")).json() == body

    async def test_patch_on_outbox_message_is_409(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client, status="outbox")
        response = await client.patch(f"/email-messages/{created['id']}", json={"status": "outbox"})
        assert_problem(response, 409)

    @pytest.mark.parametrize("status", ["sent", "failed"])
    async def test_patch_on_sent_or_failed_message_is_409(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        status: str,
    ) -> None:
        created = await make_message(client)
        await update_message(sessionmaker, created["id"], status=status)
        response = await client.patch(f"/email-messages/{created['id']}", json={"status": "outbox"})
        assert_problem(response, 409)
        assert (await client.get(f"/email-messages/{created['id']}")).json()["status"] == status

    # `draft` cancels a message in outbox (a 409 on a draft): tests/messages/test_cancel.py.
    @pytest.mark.parametrize("status", ["sent", "failed", "bogus"])
    async def test_patch_with_another_status_is_422(
        self, client: httpx.AsyncClient, status: str
    ) -> None:
        created = await make_message(client)
        response = await client.patch(f"/email-messages/{created['id']}", json={"status": status})
        assert invalid_fields(response) == ["status"]

    async def test_patch_without_status_is_422(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client)
        response = await client.patch(f"/email-messages/{created['id']}", json={})
        assert invalid_fields(response) == ["status"]

    async def test_patch_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.patch(
            "/email-messages/mail_msg_01JD0000000000000000000000", json={"status": "outbox"}
        )
        assert_problem(response, 404)


class TestDelete:
    @pytest.mark.parametrize("status", ["draft", "sent", "failed"])
    async def test_delete_is_204_and_then_get_is_404(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        status: str,
    ) -> None:
        created = await make_message(client)
        if status != "draft":
            await update_message(sessionmaker, created["id"], status=status)
        response = await client.delete(f"/email-messages/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert_problem(await client.get(f"/email-messages/{created['id']}"), 404)

    async def test_delete_outbox_message_is_409_and_keeps_it(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_message(client, status="outbox")
        response = await client.delete(f"/email-messages/{created['id']}")
        assert_problem(response, 409)
        assert (await client.get(f"/email-messages/{created['id']}")).status_code == 200

    async def test_delete_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/email-messages/mail_msg_01JD0000000000000000000000")
        assert_problem(response, 404)


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
