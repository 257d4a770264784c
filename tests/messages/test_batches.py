"""HTTP tests of messages/batch_router.py: POST /email-message-batches."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.app import create_app
from postroom.auth.service import NewOrganization
from postroom.settings import LimitSettings
from tests.conftest import make_settings
from tests.factories import message_body, upload_file
from tests.harness import HarnessFactory
from tests.servers.http import serve_in_thread
from tests.servers.smtp import smtp_server

PATH = "/email-message-batches"
INVALID: dict[int, dict[str, Any]] = {
    7: {"to": []},
    250: {"from": "not an address"},
    499: {"subject": "line\nbreak"},
}


def _batch(size: int, invalid: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    items = [message_body(subject=f"Batch item {i}", status="outbox") for i in range(size)]
    for index, overrides in (invalid or {}).items():
        items[index] = {**items[index], **overrides}
    return items


async def _ids(client: httpx.AsyncClient, subject: str) -> set[str]:
    """The ids of the client's messages whose subject contains `subject`."""
    found: set[str] = set()
    offset = 0
    while True:
        response = await client.get(
            "/email-messages", params={"q": subject, "limit": 1000, "offset": offset}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found |= {m["id"] for m in page}
        if len(page) < 1000:
            return found
        offset += len(page)


class TestCreate:
    async def test_500_with_3_invalid_stores_497_and_answers_each_in_order(
        self, client: httpx.AsyncClient
    ) -> None:
        items = _batch(500, INVALID)
        response = await client.post(PATH, json={"messages": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 500
        for index, result in enumerate(results):
            if index in INVALID:
                assert result["status"] == 422
                assert "emailMessage" not in result
                problem = result["problem"]
                assert problem["status"] == 422
                assert problem["type"] == "urn:postroom:problem:validation-error"
                [field] = {f["field"] for f in problem["invalidFields"]}
                assert field == next(iter(INVALID[index]))
            else:
                assert result["status"] == 201
                message = result["emailMessage"]
                assert message["subject"] == f"Batch item {index}"
                assert message["status"] == "outbox"
                assert message["_links"] == [
                    {"rel": "self", "href": f"{client.base_url}/email-messages/{message['id']}"}
                ]
        created = {r["emailMessage"]["id"] for r in results if r["status"] == 201}
        assert len(created) == 497
        assert await _ids(client, "Batch item") == created
        stored = await client.get(f"/email-messages/{results[0]['emailMessage']['id']}")
        assert stored.json() == results[0]["emailMessage"]

    async def test_item_problem_is_the_one_a_single_post_answers(
        self, client: httpx.AsyncClient
    ) -> None:
        item = message_body(to=["a@example.com", "not an address"], cc="nope")
        single = await client.post("/email-messages", json=item)
        batch = await client.post(PATH, json={"messages": [item]})
        assert single.status_code == 422
        [result] = batch.json()["results"]
        assert result == {"status": 422, "problem": single.json()}

    async def test_item_that_is_not_an_object_is_a_422_naming_body(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(PATH, json={"messages": [message_body(), "text", None]})
        assert response.status_code == 200, response.text
        first, *refused = response.json()["results"]
        assert first["status"] == 201
        for result in refused:
            assert result["status"] == 422
            assert [f["field"] for f in result["problem"]["invalidFields"]] == ["body"]

    async def test_checks_of_the_organization_are_per_item(self, client: httpx.AsyncClient) -> None:
        """Refusals that need the database (an unknown credential or file) are per item too,
        and a remembered one answers every item that shares it."""
        file = await upload_file(client)
        items = [
            message_body(credentialHash="no-such-credential"),
            message_body(),
            message_body(attachments=[{"resourceType": "file", "resourceId": "file_nope"}]),
            message_body(attachments=[{"resourceType": "file", "resourceId": file["id"]}]),
            message_body(credentialHash="no-such-credential"),
        ]
        response = await client.post(PATH, json={"messages": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [422, 201, 422, 201, 422]
        fields = [
            [f["field"] for f in r["problem"]["invalidFields"]] if r["status"] == 422 else None
            for r in results
        ]
        assert fields == [
            ["credentialHash"],
            None,
            ["attachments.0.resourceId"],
            None,
            ["credentialHash"],
        ]
        assert results[3]["emailMessage"]["attachments"] == [
            {"resourceType": "file", "resourceId": file["id"]}
        ]

    async def test_kept_counts_follow_the_stored_items(self, client: httpx.AsyncClient) -> None:
        items = [message_body(), message_body(status="outbox"), message_body(to=[])]
        assert (await client.post(PATH, json={"messages": items})).status_code == 200
        drafts = await client.get("/email-messages", params={"filter": "status:draft"})
        queued = await client.get("/email-messages", params={"filter": "status:outbox"})
        assert drafts.headers["pagination-total"] == "1"
        assert queued.headers["pagination-total"] == "1"


class TestRefused:
    async def test_more_than_the_limit_is_a_422_naming_messages(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(PATH, json={"messages": _batch(501)})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [f["field"] for f in response.json()["invalidFields"]] == ["messages"]
        assert await _ids(client, "Batch item") == set()

    async def test_empty_list_is_a_422_naming_messages(self, client: httpx.AsyncClient) -> None:
        response = await client.post(PATH, json={"messages": []})
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["invalidFields"]] == ["messages"]

    async def test_missing_messages_is_a_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(PATH, json=[message_body()])
        assert response.status_code == 422, response.text

    async def test_messages_not_a_list_is_a_422_and_bad_json_a_400(
        self, client: httpx.AsyncClient
    ) -> None:
        for body in ({"messages": "x"}, {"messages": None}, {"messages": {"0": message_body()}}):
            response = await client.post(PATH, json=body)
            assert response.status_code == 422, response.text
            assert [f["field"] for f in response.json()["invalidFields"]] == ["messages"]
        garbage = await client.post(
            PATH, content=b'{"messages": [', headers={"Content-Type": "application/json"}
        )
        assert garbage.status_code == 400

    async def test_items_of_any_shape_are_each_a_422(self, client: httpx.AsyncClient) -> None:
        items: list[Any] = [
            1,
            [],
            {},
            message_body(to="someone@example.com"),
            message_body(**{"from": 5}),
            message_body(subject="nul \x00 here"),
            message_body(text="nul \x00 here"),
            message_body(metadata={"k": ["not", "a", "string"]}),
        ]
        response = await client.post(PATH, json={"messages": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [422] * len(items)
        fields = [{f["field"] for f in r["problem"]["invalidFields"]} for r in results]
        assert fields[0] == fields[1] == {"body"}
        assert fields[2] >= {"from", "to", "subject", "text", "html"}
        assert fields[3:] == [{"to"}, {"from"}, {"subject"}, {"text"}, {"metadata.k"}]

    async def test_path_is_not_a_message_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get(PATH)
        assert response.status_code == 405


ApiFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def limited_api(database_url: str, tmp_path: Path) -> ApiFactory:
    """An API of its own on the shared database, with these LimitSettings."""

    @contextmanager
    def build(**limits: Any) -> Iterator[str]:
        settings = make_settings(database_url, tmp_path / "data", limits=LimitSettings(**limits))
        with serve_in_thread(create_app(settings)) as url:
            yield url

    return build


class TestLimits:
    async def test_a_batch_counts_one_write_per_message(
        self, limited_api: ApiFactory, organization: NewOrganization
    ) -> None:
        headers = {"REB-APIKEY": organization.api_key}
        with limited_api(rate_limit_write="10/minute", max_batch_messages=8) as url:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                first = await client.post(PATH, json={"messages": _batch(6)})
                assert first.status_code == 200, first.text
                assert first.headers["X-RateLimit-Remaining"] == "4"
                refused = await client.post(PATH, json={"messages": _batch(5)})
                assert refused.status_code == 429
                assert len(await _ids(client, "Batch item")) == 6

    async def test_the_limit_is_a_setting(
        self, limited_api: ApiFactory, organization: NewOrganization
    ) -> None:
        headers = {"REB-APIKEY": organization.api_key}
        with limited_api(max_batch_messages=2) as url:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                response = await client.post(PATH, json={"messages": _batch(3)})
                assert response.status_code == 422
                assert "at most 2" in response.json()["detail"]

    async def test_a_body_past_the_json_limit_is_taken_up_to_the_batch_limit(
        self, limited_api: ApiFactory, organization: NewOrganization
    ) -> None:
        headers = {"REB-APIKEY": organization.api_key}
        text = "x" * 2000
        items = [message_body(text=text) for _ in range(3)]
        with limited_api(max_body_bytes=4096, max_batch_body_bytes=8192) as url:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                taken = await client.post(PATH, json={"messages": items})
                assert taken.status_code == 200, taken.text
                single = await client.post("/email-messages", json=message_body(text=text * 3))
                assert single.status_code == 413
                refused = await client.post(PATH, json={"messages": items * 2})
                assert refused.status_code == 413


class TestOrganizationPath:
    async def test_served_under_the_organization_path_too(
        self, client: httpx.AsyncClient, organization: NewOrganization
    ) -> None:
        path = f"/organizations/{organization.organization_id}{PATH}"
        response = await client.post(path, json={"messages": _batch(2)})
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == [201, 201]


class TestIdempotency:
    async def test_replay_with_the_same_key_creates_nothing_and_answers_the_same(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {"messages": _batch(20, {3: {"to": []}})}
        headers = {"Idempotency-Key": "batch-1"}
        first = await client.post(PATH, json=body, headers=headers)
        assert first.status_code == 200, first.text
        stored = await _ids(client, "Batch item")
        assert len(stored) == 19
        again = await client.post(PATH, json=body, headers=headers)
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert await _ids(client, "Batch item") == stored

    async def test_same_key_with_another_batch_is_a_422(self, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": "batch-2"}
        first = await client.post(PATH, json={"messages": _batch(2)}, headers=headers)
        assert first.status_code == 200
        other = await client.post(PATH, json={"messages": _batch(3)}, headers=headers)
        assert other.status_code == 422
        assert len(await _ids(client, "Batch item")) == 2


class TestIsolation:
    async def test_another_organization_never_sees_them(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        response = await client.post(PATH, json={"messages": _batch(3)})
        ids = [r["emailMessage"]["id"] for r in response.json()["results"]]
        for message_id in ids:
            assert (await other_client.get(f"/email-messages/{message_id}")).status_code == 404
        assert await _ids(other_client, "Batch item") == set()
        # The same key in another organization is another key.
        headers = {"Idempotency-Key": "shared-key"}
        mine = await client.post(PATH, json={"messages": _batch(1)}, headers=headers)
        theirs = await other_client.post(PATH, json={"messages": _batch(1)}, headers=headers)
        assert "idempotent-replayed" not in theirs.headers
        assert mine.json() != theirs.json()
        assert len(await _ids(other_client, "Batch item")) == 1


class TestDelivery:
    async def test_outbox_items_are_delivered(self, harness_factory: HarnessFactory) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                items = _batch(30, {5: {"to": []}})
                items[10] = {**items[10], "status": "draft"}
                response = await h.client.post(PATH, json={"messages": items})
                assert response.status_code == 200, response.text
                results = response.json()["results"]
                queued = [
                    r["emailMessage"]["id"]
                    for r in results
                    if r["status"] == 201 and r["emailMessage"]["status"] == "outbox"
                ]
                assert len(queued) == 28
                assert await h.deliver() == 28
                for message_id in queued:
                    assert (await h.message(message_id))["status"] == "sent"
                draft = results[10]["emailMessage"]["id"]
                assert (await h.message(draft))["status"] == "draft"
                subjects = sorted(r.message["Subject"] for r in smtp.received)
                expected = sorted(f"Batch item {i}" for i in range(30) if i not in {5, 10})
                assert subjects == expected
