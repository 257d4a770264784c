"""HTTP tests of api/problems.py: every error is an RFC 7807 problem, and none leaks internals."""

from typing import Any

import httpx
import pytest

from postroom.api.limits import NUL_IN_URL
from postroom.auth import service as auth
from tests.factories import make_message, message_body

PROBLEM_JSON = "application/problem+json"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_no_internals(response: httpx.Response) -> None:
    text = response.text
    for marker in ("Traceback", 'File "', "sqlalchemy", "asyncpg", "aiosqlite", "pydantic_core"):
        assert marker not in text, text


class TestMalformedRequests:
    async def test_malformed_json_is_400_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages",
            content=b'{"from": "a@example.com", "to": [',
            headers={"content-type": "application/json"},
        )
        problem(response, 400)
        assert_no_internals(response)

    async def test_malformed_json_on_patch_is_400_problem(self, client: httpx.AsyncClient) -> None:
        created = await make_message(client)
        response = await client.patch(
            f"/email-messages/{created['id']}",
            content=b"{status: outbox}",
            headers={"content-type": "application/json"},
        )
        problem(response, 400)

    @pytest.mark.parametrize(
        ("content_type", "content"),
        [
            ("text/plain", b'{"status": "draft"}'),
            ("application/x-www-form-urlencoded", b"from=a%40example.com&subject=hi"),
        ],
    )
    async def test_body_that_is_not_json_is_415_problem(
        self, client: httpx.AsyncClient, content_type: str, content: bytes
    ) -> None:
        response = await client.post(
            "/email-messages", content=content, headers={"content-type": content_type}
        )
        problem(response, 415)

    async def test_json_array_body_is_422_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=[message_body()])
        body = problem(response, 422)
        assert body["invalidFields"]

    async def test_json_string_body_is_422_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json="hello")
        problem(response, 422)

    async def test_validation_problem_lists_invalid_fields(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(to=["nope"]))
        body = problem(response, 422)
        assert body["type"].endswith("validation-error")
        assert [f["field"] for f in body["invalidFields"]] == ["to.0"]
        assert all(f["message"] for f in body["invalidFields"])


class TestRouting:
    async def test_unknown_path_is_404_problem(self, client: httpx.AsyncClient) -> None:
        problem(await client.get("/no-such-resource"), 404)

    async def test_unknown_path_without_a_key_is_404_problem(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        problem(await anonymous.get("/no-such-resource"), 404)

    async def test_wrong_method_is_405_problem_with_allow(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/email-messages", json=message_body())
        problem(response, 405)
        assert response.headers["allow"] == "GET, POST"

    async def test_wrong_method_under_the_organization_path_is_405_with_allow(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        response = await client.put(
            f"/organizations/{organization.organization_id}/email-messages/mail_msg_x", json={}
        )
        problem(response, 405)
        assert response.headers["allow"] == "DELETE, GET, PATCH"

    async def test_wrong_method_on_one_message_is_405_problem(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_message(client)
        problem(await client.post(f"/email-messages/{created['id']}", json={}), 405)


class TestNulCharacters:
    """PostgreSQL text cannot hold U+0000: it is refused before it reaches any database."""

    @pytest.mark.parametrize(
        "path",
        [
            "/email-messages/mail_msg_%00",
            "/email-messages?filter=from:a%00",
            "/email-messages?q=%00",
        ],
    )
    async def test_nul_in_the_url_is_400_problem(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        problem(await client.get(path), 400)

    @pytest.mark.parametrize(
        "path", ["/unsubscribe/mail_msg_1/tag%00", "/inbound/cred%00/tag", "/healthz?x=%00"]
    )
    async def test_nul_in_any_other_api_url_is_400_problem_too(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        # Checked before routing (api/limits.RefuseNulMiddleware), not route by route.
        assert problem(await client.get(path), 400)["detail"] == NUL_IN_URL.detail

    @pytest.mark.parametrize("method", ["PATCH", "DELETE"])
    async def test_nul_in_a_message_id_is_400_problem(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        response = await client.request(
            method, "/email-messages/mail_msg_%00", json={"status": "outbox"}
        )
        problem(response, 400)


class TestNoInternalsLeak:
    @pytest.mark.parametrize(
        "body",
        [
            message_body(subject="nul \u0000 byte"),
            message_body(text="nul \u0000 byte", html="\u0000"),
            message_body(metadata={"key\u0000": "value\u0000"}),
            message_body(to=["a@example.com"] * 5000),
            message_body(subject="\u00ff\u00fe\ufffd \U0001f4e8 \u202e"),
        ],
        ids=["nul-in-subject", "nul-in-body", "nul-in-metadata", "many-recipients", "odd-unicode"],
    )
    async def test_odd_bodies_get_an_answer_without_internals(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post("/email-messages", json=body)
        assert response.status_code < 500, response.text
        assert_no_internals(response)

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": "99999999999999999999999"},
            {"offset": "99999999999999999999999"},
            {"filter": "responseCode:99999999999999999999999"},
            {"filter": "responseCode:-2147483649..2147483648"},
            {"filter": "createdTime:9999-12-31T23:59:59Z.."},
            {"filter": "createdTime:0001-01-01T00:00:00+14:00.."},
            {"filter": "id:\u0000"},
            {"q": "\u0000"},
            {"q": "%" * 2000},
            {"sort": "-" * 50},
        ],
    )
    async def test_odd_queries_get_an_answer_without_internals(
        self, client: httpx.AsyncClient, params: dict[str, str]
    ) -> None:
        response = await client.get("/email-messages", params=params)
        assert response.status_code < 500, response.text
        assert_no_internals(response)

    async def test_invalid_utf8_body_is_a_client_error(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages",
            content=b'{"from": "\xff\xfe@example.com"}',
            headers={"content-type": "application/json"},
        )
        assert 400 <= response.status_code < 500, response.text
        assert_no_internals(response)
