"""Answers a client can act on: outages are 503 with Retry-After, a full disk 507, an
unhandled error a 500 said once on a connection kept alive, and every 4xx a postroom problem."""

import asyncio
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.delivery import service as delivery
from postroom.delivery.transports.base import (
    OutcomeUnknownError,
    PermanentError,
    Receipt,
    TransientError,
)
from postroom.errors import PROBLEM_BASE
from postroom.settings import FileSettings
from tests.conftest import make_settings
from tests.databases import BACKEND
from tests.factories import message_body, upload_file
from tests.servers.http import CLIENT_TLS, serve_in_thread


def assert_postroom_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"].startswith(PROBLEM_BASE), problem
    assert problem["status"] == status
    return problem


class TestEveryProblemHasAType:
    async def test_parse_error(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_postroom_problem(response, 400)

    async def test_deep_nesting(self, client: httpx.AsyncClient) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        response = await client.post(
            "/email-messages", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in {400, 413, 422}, response.text
        assert_postroom_problem(response, response.status_code)

    async def test_unknown_route_and_method(self, client: httpx.AsyncClient) -> None:
        assert_postroom_problem(await client.get("/no-such-thing"), 404)
        assert_postroom_problem(await client.put("/email-messages"), 405)

    async def test_unsupported_media_type(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", content=b"x=1")
        assert_postroom_problem(response, 415)

    async def test_body_too_large(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert_postroom_problem(response, 413)

    async def test_a_long_string_is_counted_in_characters(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email-messages", json=message_body(subject="s" * 5000))
        problem = assert_postroom_problem(response, 422)
        [field] = [f for f in problem["invalidFields"] if f["field"] == "subject"]
        assert "characters" in field["message"]
        assert "items" not in field["message"]

    async def test_filter_with_equals_shows_the_colon_form(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "status=sent"})
        problem = assert_postroom_problem(response, 422)
        assert "status:sent" in problem["detail"]
        assert problem["invalidFields"][0]["field"] == "filter.status"


class TestHeaders:
    async def test_401_names_the_scheme(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/email-messages")
        assert_postroom_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_rate_limit_headers_on_errors_and_downloads(
        self, client: httpx.AsyncClient
    ) -> None:
        missing = await client.get("/email-messages/mail_msg_missing")
        assert missing.status_code == 404
        invalid = await client.post("/email-messages", json={})
        assert invalid.status_code == 422
        created = await upload_file(client)
        download = await client.get(f"/files/{created['id']}/download")
        assert download.status_code == 200
        for response in (missing, invalid, download):
            assert int(response.headers["X-RateLimit-Limit"]) > 0
            assert "X-RateLimit-Remaining" in response.headers


class TestOutcomeSpelling:
    def test_one_spelling_for_the_api_the_log_and_the_metric(self) -> None:
        spelled = {
            delivery.outcome_of(Receipt(250, "ok")): "sent",
            delivery.outcome_of(TransientError("451 later")): "transient",
            delivery.outcome_of(PermanentError("550 no")): "permanent",
            delivery.outcome_of(OutcomeUnknownError("cut off")): "unknown",
        }
        assert {k.value: v for k, v in spelled.items()} == {v: v for v in spelled.values()}


def _boom_app(settings: Any) -> FastAPI:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


class TestUnhandledError:
    async def test_500_problem_logged_once_and_the_connection_kept(
        self, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        settings = make_settings(database_url, tmp_path / "data")
        with serve_in_thread(_boom_app(settings)) as url:
            host, port = httpx.URL(url).host, httpx.URL(url).port
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=CLIENT_TLS if url.startswith("https") else None,
                server_hostname=host if url.startswith("https") else None,
            )
            try:
                answers = []
                for _ in range(2):
                    writer.write(b"GET /boom HTTP/1.1\r\nHost: test\r\n\r\n")
                    await writer.drain()
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    body = await reader.readexactly(length)
                    answers.append((head, body))
            finally:
                writer.close()
        for head, body in answers:
            assert head.startswith(b"HTTP/1.1 500")
            assert b"application/problem+json" in head
            assert b"a bug" not in body and b"Traceback" not in body
        records = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
        assert len(records) == 2  # one a request, none from uvicorn
        assert all(r.name == "postroom.api.failures" for r in records)


@pytest.fixture
def unreachable_url(tmp_path: Path) -> str:
    if BACKEND == "postgresql":
        return "postgresql+asyncpg://postgres@127.0.0.1:1/postroom"  # nothing listens on 1
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "postroom.db").mkdir()
    return f"sqlite+aiosqlite:///{tmp_path / 'postroom.db'}"


@pytest.fixture
def unreachable_api(unreachable_url: str, tmp_path: Path) -> Iterator[str]:
    settings = make_settings(unreachable_url, tmp_path / "data")
    with serve_in_thread(create_app(settings)) as url:
        yield url


class TestOutage:
    async def test_unreachable_database_is_503_with_retry_after(
        self, unreachable_api: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with httpx.AsyncClient(
            base_url=unreachable_api, headers={"REB-APIKEY": "pr_x"}, verify=CLIENT_TLS
        ) as http:
            for response in (
                await http.get("/email-messages"),
                await http.post("/email-messages", json=message_body()),
            ):
                problem = assert_postroom_problem(response, 503)
                assert int(response.headers["Retry-After"]) > 0
                assert "database" in problem["detail"]
            # The API itself is up: liveness does not depend on the database.
            assert (await http.get("/healthz")).status_code == 200
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class TestDiskReserve:
    @pytest.fixture
    def full_api(self, database_url: str, tmp_path: Path) -> Iterator[str]:
        free = shutil.disk_usage(tmp_path).free
        settings = make_settings(
            database_url, tmp_path / "data", files=FileSettings(reserve_bytes=free * 2)
        )
        with serve_in_thread(create_app(settings)) as url:
            yield url

    async def test_writes_507_reads_and_deletes_work(
        self, full_api: str, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        created = await upload_file(client)  # through the API with room to spare
        async with httpx.AsyncClient(
            base_url=full_api, headers={"REB-APIKEY": organization.api_key}, verify=CLIENT_TLS
        ) as http:
            upload = await http.post("/files", files={"file": ("a.txt", b"hello")})
            assert_postroom_problem(upload, 507)
            message = await http.post("/email-messages", json=message_body())
            assert_postroom_problem(message, 507)
            assert (await http.get(f"/files/{created['id']}")).status_code == 200
            assert (await http.delete(f"/files/{created['id']}")).status_code == 204
