"""api/transactions.py with the connection gate (PostgreSQL): a request that finds no connection
free within the pool's timeout is answered 503 with Retry-After, and holds nothing."""

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from postroom.app import create_app
from postroom.db.engine import ConnectionGate
from tests.conftest import make_settings
from tests.databases import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="SQLite has no gate")


async def test_no_connection_free_in_time_is_a_503_problem(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(make_settings(database_url, tmp_path / "data"))
    answers: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        answers.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/email-messages",
        "raw_path": b"/email-messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    async with app.router.lifespan_context(app):
        gate = ConnectionGate(1, timeout=0.01)
        app.state.connection_gate = gate
        await gate.enter()  # every connection is taken
        await app(scope, receive, send)
        gate.leave()
        await gate.enter()  # the refused request left its place free
    start, body = answers
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert int(headers[b"retry-after"]) > 0
    problem = json.loads(body["body"])
    assert problem["title"] == "Service unavailable"
    assert problem["type"] == "urn:postroom:problem:overloaded"
