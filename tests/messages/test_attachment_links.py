"""A message attachment that names an attachment (a link, /attachments) in place of a file:
checked on create, resolved to its file when the message is queued, and sent as that file."""

from typing import Any

import httpx

from tests.factories import make_message, pdf_bytes, png_bytes, upload_file
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server


async def _link(client: httpx.AsyncClient, file_id: str) -> dict[str, Any]:
    message = await make_message(client)
    response = await client.post(
        "/attachments",
        json={"fileId": file_id, "relatedType": "email-message", "relatedId": message["id"]},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _by_link(*links: dict[str, Any]) -> list[dict[str, str]]:
    return [{"resourceType": "attachment", "resourceId": link["id"]} for link in links]


class TestCreate:
    async def test_a_link_is_accepted_and_shown_as_given(self, client: httpx.AsyncClient) -> None:
        link = await _link(client, (await upload_file(client))["id"])
        created = await make_message(client, attachments=_by_link(link))
        assert created["attachments"] == _by_link(link)
        fetched = await client.get(f"/email-messages/{created['id']}")
        assert fetched.json()["attachments"] == _by_link(link)

    async def test_an_unknown_link_is_422_on_its_resource_id(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/email-messages",
            json={
                **(await _message_fields()),
                "attachments": [{"resourceType": "attachment", "resourceId": "att_nope"}],
            },
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [
            "attachments.0.resourceId"
        ]

    async def test_another_organizations_link_is_422(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await _link(other_client, (await upload_file(other_client))["id"])
        response = await client.post(
            "/email-messages", json={**(await _message_fields()), "attachments": _by_link(theirs)}
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [
            "attachments.0.resourceId"
        ]

    async def test_an_unknown_type_names_both_supported_types(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/email-messages",
            json={
                **(await _message_fields()),
                "attachments": [{"resourceType": "invoice", "resourceId": "in_1"}],
            },
        )
        assert response.status_code == 422
        [problem] = response.json()["invalidFields"]
        assert problem["field"] == "attachments.0.resourceType"
        assert "'file'" in problem["message"]
        assert "'attachment'" in problem["message"]

    async def test_the_linked_file_cannot_be_deleted_while_the_message_is_queued(
        self, client: httpx.AsyncClient
    ) -> None:
        file = await upload_file(client)
        link = await _link(client, file["id"])
        await make_message(client, status="outbox", attachments=_by_link(link))
        assert (await client.delete(f"/attachments/{link['id']}")).status_code == 204
        assert (await client.delete(f"/files/{file['id']}")).status_code == 409


async def _message_fields() -> dict[str, Any]:
    return {
        "from": "sender@example.com",
        "to": ["recipient@example.com"],
        "subject": "s",
        "text": "t",
        "html": "<p>h</p>",
    }


class TestSend:
    async def test_the_linked_file_arrives_over_smtp(self, harness_factory: HarnessFactory) -> None:
        content = pdf_bytes(50_000)
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                file = await upload_file(h.client, content, filename="Contract.pdf")
                link = await _link(h.client, file["id"])
                created = await make_message(h.client, status="outbox", attachments=_by_link(link))
                assert await h.deliver() == 1
                [received] = smtp.received
                [part] = received.message.iter_attachments()
                assert (part.get_filename(), part.get_content_type()) == (
                    "Contract.pdf",
                    "application/pdf",
                )
                assert part.get_content() == content
                assert (await h.message(created["id"]))["status"] == "sent"

    async def test_a_queued_message_sends_the_file_its_link_named_when_queued(
        self, harness_factory: HarnessFactory
    ) -> None:
        first, second = pdf_bytes(1000), png_bytes(1000)
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                file = await upload_file(h.client, first, filename="first.pdf")
                link = await _link(h.client, file["id"])
                await make_message(h.client, status="outbox", attachments=_by_link(link))
                other = await upload_file(h.client, second, filename="second.png")
                relinked = await h.client.put(
                    f"/attachments/{link['id']}",
                    json={**_write(link), "fileId": other["id"]},
                )
                assert relinked.status_code == 200, relinked.text
                assert (await h.client.delete(f"/attachments/{link['id']}")).status_code == 204
                assert await h.deliver() == 1
                [part] = smtp.received[0].message.iter_attachments()
                assert (part.get_filename(), part.get_content()) == ("first.pdf", first)

    async def test_a_draft_sends_the_file_its_link_names_when_it_is_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        first, second = pdf_bytes(1000), png_bytes(1000)
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                file = await upload_file(h.client, first, filename="first.pdf")
                link = await _link(h.client, file["id"])
                draft = await make_message(h.client, attachments=_by_link(link))
                other = await upload_file(h.client, second, filename="second.png")
                relinked = await h.client.put(
                    f"/attachments/{link['id']}", json={**_write(link), "fileId": other["id"]}
                )
                assert relinked.status_code == 200, relinked.text
                # The first file is no longer attached by anything queued: it can go.
                assert (await h.client.delete(f"/files/{file['id']}")).status_code == 204
                sent = await h.client.patch(
                    f"/email-messages/{draft['id']}", json={"status": "outbox"}
                )
                assert sent.status_code == 200, sent.text
                assert (await h.client.delete(f"/files/{other['id']}")).status_code == 409
                assert await h.deliver() == 1
                [part] = smtp.received[0].message.iter_attachments()
                assert (part.get_filename(), part.get_content()) == ("second.png", second)

    async def test_a_draft_whose_link_is_gone_cannot_be_sent(
        self, client: httpx.AsyncClient
    ) -> None:
        link = await _link(client, (await upload_file(client))["id"])
        draft = await make_message(client, attachments=_by_link(link))
        assert (await client.delete(f"/attachments/{link['id']}")).status_code == 204
        sent = await client.patch(f"/email-messages/{draft['id']}", json={"status": "outbox"})
        assert sent.status_code == 422
        assert [f["field"] for f in sent.json()["invalidFields"]] == ["attachments.0.resourceId"]


def _write(link: dict[str, Any]) -> dict[str, Any]:
    return {k: link[k] for k in ("fileId", "relatedType", "relatedId", "name", "description")}
