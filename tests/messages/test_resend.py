"""Resend (messages/resend.py): POST /email-messages/{id}/resend makes a new message from a sent
or failed one, checked as a new POST, linked both ways, delivered through the real SMTP server,
with the blocklist applied; a draft or a message in outbox is a 409, another organization's 404."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.messages.models import EmailMessage
from tests.factories import (
    make_message,
    make_org,
    pdf_bytes,
    png_bytes,
    update_message,
    upload_file,
)
from tests.harness import Harness, HarnessFactory
from tests.servers.smtp import SmtpServer, smtp_server

BLOCKED = "blocked@example.com"
OTHER = "other@example.com"


@asynccontextmanager
async def _harness(harness_factory: HarnessFactory) -> AsyncIterator[tuple[Harness, SmtpServer]]:
    with smtp_server() as smtp:
        async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
            yield h, smtp


async def _resend(
    client: httpx.AsyncClient, message_id: str, body: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    if body is None:
        return await client.post(f"/email-messages/{message_id}/resend", **kw)
    return await client.post(f"/email-messages/{message_id}/resend", json=body, **kw)


async def _resent(
    client: httpx.AsyncClient, message_id: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await _resend(client, message_id, body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["Location"] == created["_links"][0]["href"]
    return created


def _links(message: dict[str, Any]) -> list[tuple[str, str]]:
    """The message's links as (rel, the id their URL ends with)."""
    return [(link["rel"], link["href"].rsplit("/", 1)[1]) for link in message["_links"]]


async def _failed(h: Harness, smtp: SmtpServer, **overrides: Any) -> dict[str, Any]:
    """A message the SMTP server refused for good."""
    smtp.script("550 5.7.1 refused by policy")
    created = await make_message(h.client, status="outbox", **overrides)
    assert await h.deliver() == 1
    failed = await h.message(created["id"])
    assert failed["status"] == "failed", failed
    return failed


async def _sent(h: Harness, **overrides: Any) -> dict[str, Any]:
    created = await make_message(h.client, status="outbox", **overrides)
    assert await h.deliver() == 1
    sent = await h.message(created["id"])
    assert sent["status"] == "sent", sent
    return sent


async def _settled(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    status: str = "sent",
    **overrides: Any,
) -> dict[str, Any]:
    """A message set to `sent` (or `failed`) directly, for tests that need no delivery."""
    created = await make_message(client, **overrides)
    await update_message(sessionmaker, created["id"], status=status)
    return created


async def _organization_of(h: Harness, message_id: str) -> str:
    async with h.sessionmaker() as session:
        found = await session.scalar(
            select(EmailMessage.organization_id).where(EmailMessage.id == message_id)
        )
    assert found is not None
    return found


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    return problem


def _fields(response: httpx.Response) -> list[str]:
    return [f["field"] for f in _problem(response, 422)["invalidFields"]]


class TestResend:
    async def test_a_failed_message_is_copied_linked_and_delivered(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            failed = await _failed(
                h, smtp, cc=["cc@example.com"], bcc=["bcc@example.com"], metadata={"k": "v"}
            )
            copy = await _resent(h.client, failed["id"])
            assert copy["id"] != failed["id"]
            assert copy["status"] == "outbox"
            same = ("from", "to", "cc", "bcc", "subject", "text", "html", "metadata")
            assert {k: copy[k] for k in same} == {k: failed[k] for k in same}
            assert copy["credentialHash"] is None
            assert (copy["responseCode"], copy["sentTime"], copy["scheduledTime"]) == (
                None,
                None,
                None,
            )
            assert _links(copy) == [("self", copy["id"]), ("resent-from", failed["id"])]
            assert await h.message(copy["id"]) == copy

            assert await h.deliver() == 1
            delivered = await h.message(copy["id"])
            assert delivered["status"] == "sent"
            received = smtp.received[-1]
            assert received.message["Subject"] == failed["subject"]
            assert sorted(received.rcpt_tos) == sorted(
                ["recipient@example.com", "cc@example.com", "bcc@example.com"]
            )
            # The original is as it was, but for its new link.
            original = await h.message(failed["id"])
            assert original["status"] == "failed"
            assert _links(original) == [("self", failed["id"]), ("resends", copy["id"])]
            assert {k: v for k, v in original.items() if k != "_links"} == {
                k: v for k, v in failed.items() if k != "_links"
            }

    async def test_two_resends_give_two_links_oldest_first_in_get_and_list(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, _):
            sent = await _sent(h)
            first = await _resent(h.client, sent["id"])
            h.clock.advance(timedelta(seconds=5))
            second = await _resent(h.client, sent["id"], {"status": "draft"})
            assert second["status"] == "draft"
            expected = [("self", sent["id"]), ("resends", first["id"]), ("resends", second["id"])]
            assert _links(await h.message(sent["id"])) == expected
            listed = (await h.client.get("/email-messages")).json()
            by_id = {m["id"]: m for m in listed}
            assert _links(by_id[sent["id"]]) == expected
            assert _links(by_id[second["id"]]) == [
                ("self", second["id"]),
                ("resent-from", sent["id"]),
            ]
            # A resend of a resend links to the one it copied.
            assert await h.deliver() == 1
            third = await _resent(h.client, first["id"])
            assert _links(third)[1] == ("resent-from", first["id"])
            assert _links(await h.message(first["id"]))[2:] == [("resends", third["id"])]

    async def test_deleting_the_original_drops_the_copys_link(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, _):
            sent = await _sent(h)
            copy = await _resent(h.client, sent["id"], {"status": "draft"})
            deleted = await h.client.delete(f"/email-messages/{sent['id']}")
            assert deleted.status_code == 204, deleted.text
            assert _links(await h.message(copy["id"])) == [("self", copy["id"])]

    async def test_a_blocklisted_recipient_is_left_out_of_the_resend(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, smtp):
            sent = await _sent(h, to=[OTHER], cc=[BLOCKED])
            assert sorted(smtp.received[-1].rcpt_tos) == sorted([OTHER, BLOCKED])
            blocked = await h.client.post("/blocklists", json={"type": "email", "value": BLOCKED})
            assert blocked.status_code == 201, blocked.text

            copy = await _resent(h.client, sent["id"])
            assert copy["cc"] == [BLOCKED]
            assert await h.deliver() == 1
            assert smtp.received[-1].rcpt_tos == [OTHER]
            assert smtp.received[-1].message["Cc"] is None
            assert (await h.message(copy["id"]))["status"] == "sent"
            [attempt] = await h.attempts(copy["id"])
            assert attempt["suppressedRecipients"] == [BLOCKED]

    async def test_idempotency_key_makes_one_copy(self, harness_factory: HarnessFactory) -> None:
        async with _harness(harness_factory) as (h, _):
            sent = await _sent(h)
            headers = {"Idempotency-Key": "resend-once"}
            first = await _resend(h.client, sent["id"], {"to": [OTHER]}, headers=headers)
            again = await _resend(h.client, sent["id"], {"to": [OTHER]}, headers=headers)
            assert first.status_code == again.status_code == 201, again.text
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.json() == first.json()
            assert again.headers["Location"] == first.headers["Location"]
            assert _links(await h.message(sent["id"]))[1:] == [("resends", first.json()["id"])]
            reused = await _resend(h.client, sent["id"], {"to": [BLOCKED]}, headers=headers)
            assert reused.status_code == 422, reused.text


class TestAttachments:
    async def test_the_same_files_are_sent_again(self, harness_factory: HarnessFactory) -> None:
        async with _harness(harness_factory) as (h, smtp):
            png = await upload_file(h.client, png_bytes(), "picture.png")
            paper = pdf_bytes()
            pdf = await upload_file(h.client, paper, "paper.pdf")
            related = {
                "relatedType": "email-message",
                "relatedId": (await make_message(h.client))["id"],
            }
            link = await h.client.post("/attachments", json={"fileId": pdf["id"], **related})
            assert link.status_code == 201, link.text
            attachments = [
                {"resourceType": "file", "resourceId": png["id"]},
                {"resourceType": "attachment", "resourceId": link.json()["id"]},
            ]
            sent = await _sent(h, attachments=attachments)
            # The link now names another file: the copy still sends the one that went out.
            other = await upload_file(h.client, png_bytes(64), "other.png")
            moved = await h.client.put(
                f"/attachments/{link.json()['id']}",
                json={"fileId": other["id"], **related},
            )
            assert moved.status_code == 200, moved.text

            copy = await _resent(h.client, sent["id"])
            assert copy["attachments"] == [
                {"resourceType": "file", "resourceId": png["id"]},
                {"resourceType": "file", "resourceId": pdf["id"]},
            ]
            assert await h.deliver() == 1
            parts = list(smtp.received[-1].message.iter_attachments())
            assert [p.get_filename() for p in parts] == ["picture.png", "paper.pdf"]
            assert parts[1].get_content() == paper

    async def test_a_file_deleted_since_is_422_on_its_field(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with _harness(harness_factory) as (h, _):
            png = await upload_file(h.client)
            sent = await _sent(h, attachments=[{"resourceType": "file", "resourceId": png["id"]}])
            gone = await h.client.delete(f"/files/{png['id']}")
            assert gone.status_code == 204, gone.text
            response = await _resend(h.client, sent["id"])
            assert _fields(response) == ["attachments.0.resourceId"]
            assert _links(await h.message(sent["id"])) == [("self", sent["id"])]


class TestOverrides:
    async def test_recipients_credential_and_time_are_replaced(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as other_smtp:
            async with _harness(harness_factory) as (h, smtp):
                sent = await _sent(h, cc=["cc@example.com"], bcc=["bcc@example.com"])
                organization_id = await _organization_of(h, sent["id"])
                credential = await h.smtp_credential(organization_id, other_smtp.port)
                at = (h.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                copy = await _resent(
                    h.client,
                    sent["id"],
                    {
                        "to": [OTHER],
                        "cc": None,
                        "bcc": [],
                        "credentialHash": credential,
                        "scheduledTime": at,
                    },
                )
                assert (copy["to"], copy["cc"], copy["bcc"]) == ([OTHER], [], [])
                assert copy["credentialHash"] == credential
                assert copy["scheduledTime"] == at
                assert copy["subject"] == sent["subject"]

                assert await h.deliver() == 0
                h.clock.advance(timedelta(hours=1))
                assert await h.deliver() == 1
                assert len(smtp.received) == 1
                assert other_smtp.received[-1].rcpt_tos == [OTHER]
                assert (await h.message(copy["id"]))["status"] == "sent"

    async def test_a_deactivated_credential_is_422_unless_dropped_for_the_default_sender(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as other_smtp:
            async with _harness(harness_factory) as (h, smtp):
                first = await make_message(h.client)
                organization_id = await _organization_of(h, first["id"])
                credential = await h.smtp_credential(organization_id, other_smtp.port)
                sent = await _sent(h, credentialHash=credential)
                assert len(other_smtp.received) == 1
                deactivated = await h.client.patch(
                    f"/service-credentials/smtp/{credential}", json={"status": "deactivated"}
                )
                assert deactivated.status_code == 200, deactivated.text
                assert _fields(await _resend(h.client, sent["id"])) == ["credentialHash"]
                copy = await _resent(h.client, sent["id"], {"credentialHash": None})
                assert copy["credentialHash"] is None
                assert await h.deliver() == 1
                assert len(smtp.received) == 1
                assert len(other_smtp.received) == 1

    async def test_overrides_are_validated_as_a_new_post(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        sent = await _settled(client, sessionmaker)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"to": ["not an address"]}, "to.0"),
            ({"to": []}, "to"),
            ({"to": None}, "to"),
            ({"cc": [f"r{n}@example.com" for n in range(51)]}, "cc"),
            ({"bcc": "one@example.com"}, "bcc"),
            ({"credentialHash": "cred_nope"}, "credentialHash"),
            ({"status": "sent"}, "status"),
            ({"scheduledTime": "2020-01-01T00:00:00Z"}, "scheduledTime"),
            ({"scheduledTime": "tomorrow"}, "scheduledTime"),
        ]
        for body, field in cases:
            response = await _resend(client, sent["id"], body)
            assert _fields(response) == [field], (body, response.text)
        listed = await client.get("/email-messages")
        assert [m["id"] for m in listed.json()] == [sent["id"]]

    async def test_no_body_an_empty_object_and_unknown_fields_copy_as_is(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        failed = await _settled(client, sessionmaker, "failed")
        for body in (None, {}, {"subject": "ignored", "id": "mail_msg_x"}):
            copy = await _resent(client, failed["id"], body)
            assert (copy["subject"], copy["status"]) == (failed["subject"], "outbox")

    async def test_not_json_is_a_problem(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        sent = await _settled(client, sessionmaker)
        response = await client.post(
            f"/email-messages/{sent['id']}/resend",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        _problem(response, 400)
        listed = await _resend(client, sent["id"], {"to": "x@example.com"})
        assert _fields(listed) == ["to"]


class TestRefused:
    async def test_a_draft_is_409(self, client: httpx.AsyncClient) -> None:
        draft = await make_message(client)
        problem = _problem(await _resend(client, draft["id"]), 409)
        assert problem["type"] == "urn:postroom:problem:message-is-draft"
        assert "draft" in problem["detail"]

    async def test_a_message_in_outbox_is_409(self, client: httpx.AsyncClient) -> None:
        queued = await make_message(client, status="outbox")
        problem = _problem(await _resend(client, queued["id"]), 409)
        assert problem["type"] == "urn:postroom:problem:message-not-sent"
        assert "outbox" in problem["detail"]

    async def test_another_organizations_message_is_404(
        self,
        client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        theirs = await _settled(other_client, sessionmaker)
        _problem(await _resend(client, theirs["id"]), 404)
        _problem(await _resend(client, "mail_msg_nope"), 404)
        assert (await client.get("/email-messages")).json() == []
        # Their own resend is not shown to another organization either.
        copy = await _resent(other_client, theirs["id"], {"status": "draft"})
        assert (await client.get(f"/email-messages/{copy['id']}")).status_code == 404

    async def test_under_the_organization_path_too(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: Any,
    ) -> None:
        sent = await _settled(client, sessionmaker)
        mine = f"/organizations/{organization.organization_id}/email-messages/{sent['id']}/resend"
        assert (await client.post(mine)).status_code == 201
        other = await make_org(sessionmaker)
        theirs = f"/organizations/{other.organization_id}/email-messages/{sent['id']}/resend"
        assert (await client.post(theirs)).status_code == 404


class TestDocumented:
    async def test_the_operation_is_in_the_openapi_document(self, api_url: str) -> None:
        async with httpx.AsyncClient(base_url=api_url) as http:
            spec = (await http.get("/openapi.json")).json()
        operation = spec["paths"]["/email-messages/{id}/resend"]["post"]
        assert operation["operationId"] == "PostEmailMessageResend"
        assert {"201", "404", "409", "422"} <= set(operation["responses"])
        assert "Location" in operation["responses"]["201"]["headers"]
