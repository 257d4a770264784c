"""A request leaves no reference cycles behind: what it made is freed by reference counting when it
ends, so the API process can run its garbage collector seldom (core/collector.py)."""

import gc
import json
from collections import Counter
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.db.engine import create_engine, create_sessionmaker
from tests.conftest import make_settings
from tests.databases import DatabaseFactory
from tests.factories import message_body


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_creating_messages_leaves_no_reference_cycles(
    databases: DatabaseFactory, tmp_path: Path, collector_off: None
) -> None:
    # A database of its own: the messages it queues are nobody's to deliver.
    url = await databases.clone()
    engine = create_engine(url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            organization = await auth.create_organization(session, "cycles", SystemClock().now())
    finally:
        await engine.dispose()
    app = create_app(make_settings(url, tmp_path / "data"))
    body = json.dumps(message_body(status="outbox")).encode()
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"reb-apikey", organization.api_key.encode()),
    ]
    statuses: Counter[int] = Counter()

    async def post() -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/email-messages",
            "raw_path": b"/email-messages",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            assert not received, "the body is read once"
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(scope, receive, send)

    async with app.router.lifespan_context(app):
        for _ in range(5):  # first uses: caches, prepared statements, pooled connections
            await post()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(20):
            await post()
        gc.collect()
        left = Counter(type(o).__qualname__ for o in gc.garbage)
    assert statuses == {201: 25}
    assert not left, left.most_common(10)
