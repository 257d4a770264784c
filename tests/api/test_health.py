"""/healthz, /readyz, /metrics (api/health.py, api/metrics.py) and request logs."""

import json
import logging
import re
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from postroom.app import create_app
from postroom.auth.service import NewOrganization
from postroom.core.logging import JsonFormatter
from postroom.db.engine import create_engine
from tests.api.conftest import ApiFactory
from tests.conftest import make_settings
from tests.databases import DatabaseFactory
from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.http import serve_in_thread
from tests.servers.smtp import smtp_server


def _sample(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$"
        if labels
        else (rf"^{re.escape(name)} (\S+)$")
    )
    for line in metrics.splitlines():
        match = re.match(pattern, line)
        if match:
            return float(match.groups()[-1])
    return 0.0


class TestHealth:
    async def test_healthz_answers_without_a_key(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_is_ok_on_a_migrated_database(
        self, api_factory: ApiFactory, databases: DatabaseFactory
    ) -> None:
        # A database of its own: mail other tests queued in the shared one is due, with no
        # worker there, which is rightly not ready.
        with api_factory(await databases.clone()) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/readyz")
        assert response.status_code == 200, response.text

    async def test_readyz_is_503_when_the_database_is_down(self, api_factory: ApiFactory) -> None:
        # Nothing listens on port 1: as good as a database that went away.
        with api_factory("postgresql+asyncpg://postgres@127.0.0.1:1/postroom") as url:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/readyz")
                assert response.status_code == 503
                assert (await client.get("/healthz")).status_code == 200

    async def test_readyz_is_503_while_migrations_are_pending(
        self, api_factory: ApiFactory, databases: DatabaseFactory
    ) -> None:
        with api_factory(await databases.empty()) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/readyz")
                assert response.status_code == 503
                assert response.json() == {"status": "migrations pending"}


async def drop_workers_table(url: str) -> None:
    """A database the API can use but a worker cannot: its workers table is gone."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE workers"))
    finally:
        await engine.dispose()


class TestReadinessAndWorkers:
    async def test_due_mail_with_no_worker_seen_within_the_window_is_503_with_a_reason(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            stale = h.settings.delivery.worker_stale_seconds
            assert stale == 60  # the default
            # Nothing due: no worker needed.
            assert (await h.client.get("/readyz")).json() == {"status": "ok"}

            await make_message(h.client, status="outbox")
            h.clock.advance(timedelta(seconds=3))
            response = await h.client.get("/readyz")
            assert response.status_code == 503
            assert response.json() == {
                "status": "no worker seen",
                "stale_seconds": stale,
                "oldest_due_waiting_seconds": 3,
            }
            # As documented, so that a client (and the fuzz test) can read it.
            document = (await h.client.get("/openapi.json")).json()
            answers = document["paths"]["/readyz"]["get"]["responses"]
            assert answers["503"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Readiness"
            }
            documented = document["components"]["schemas"]["Readiness"]["properties"]
            assert set(response.json()) <= set(documented)

            await h.worker.heartbeat()
            response = await h.client.get("/readyz")
            assert response.status_code == 200, response.text

            # Still seen at the window's edge; not a moment past it.
            h.clock.advance(timedelta(seconds=stale))
            assert (await h.client.get("/readyz")).status_code == 200
            h.clock.advance(timedelta(seconds=1))
            response = await h.client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["status"] == "no worker seen"

            await h.worker.heartbeat()
            assert (await h.client.get("/readyz")).status_code == 200

    async def test_mail_not_yet_due_needs_no_worker(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory() as h:
            created = await make_message(h.client, status="outbox")
            await h.deliver()  # claimed now: due again only when its lease runs out
            assert (await h.message(created["id"]))["status"] == "sent"
            await make_message(h.client, status="draft")
            assert (await h.client.get("/readyz")).json() == {"status": "ok"}

    async def test_the_live_workers_gauge_counts_heartbeats_within_the_window(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory() as h:
            metrics = (await h.client.get("/metrics")).text
            assert "# TYPE postroom_workers_live gauge" in metrics
            assert _sample(metrics, "postroom_workers_live") == 0
            await h.worker.heartbeat()
            assert _sample((await h.client.get("/metrics")).text, "postroom_workers_live") == 1
            h.clock.advance(timedelta(seconds=h.settings.delivery.worker_stale_seconds + 1))
            assert _sample((await h.client.get("/metrics")).text, "postroom_workers_live") == 0

    async def test_readyz_is_503_once_the_embedded_worker_has_died(
        self, databases: DatabaseFactory, tmp_path: Path
    ) -> None:
        url = await databases.clone()
        await drop_workers_table(url)
        died = threading.Event()
        app = create_app(
            make_settings(url, tmp_path / "data"),
            embedded_worker=True,
            on_worker_death=lambda _error: died.set(),
        )
        with serve_in_thread(app) as api_url:
            assert died.wait(timeout=30), "the worker did not die"
            async with httpx.AsyncClient(base_url=api_url) as client:
                response = await client.get("/readyz")
                assert response.status_code == 503
                body = response.json()
                assert body["status"] == "delivery worker died"
                assert body["error"] in {"OperationalError", "ProgrammingError"}
                assert (await client.get("/healthz")).status_code == 200


class TestMetrics:
    async def test_metrics_change_when_a_message_is_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                before = (await h.client.get("/metrics")).text
                await make_message(h.client, status="outbox")
                queued = (await h.client.get("/metrics")).text
                assert _sample(queued, "postroom_outbox_depth") == 1
                await h.deliver()
                after = (await h.client.get("/metrics")).text

        sent = "postroom_messages_sent_total"
        assert _sample(after, sent, transport="smtp") == _sample(before, sent, transport="smtp") + 1
        created = "postroom_messages_created_total"
        assert _sample(after, created, status="outbox") == (
            _sample(before, created, status="outbox") + 1
        )
        assert _sample(after, "postroom_outbox_depth") == 0
        assert _sample(after, "postroom_delivery_latency_seconds_count") >= 1
        assert 'route="/email-messages"' in after


class TestRequestLogs:
    async def test_one_json_line_per_request_without_secrets(
        self,
        client: httpx.AsyncClient,
        organization: NewOrganization,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="postroom.requests")
        created = await make_message(client)
        await client.get(f"/email-messages/{created['id']}")
        # The middleware logs before the answer's last byte leaves, so both lines are here.
        lines = [
            json.loads(JsonFormatter().format(r))
            for r in caplog.records
            if r.name == "postroom.requests"
        ]
        ours = [x for x in lines if x["organization_id"] == organization.organization_id]
        assert [(line["method"], line["route"], line["status"]) for line in ours] == [
            ("POST", "/email-messages", 201),
            ("GET", "/email-messages/{id}", 200),
        ]
        text = caplog.text + "".join(json.dumps(line) for line in lines)
        assert organization.api_key not in text
        assert "Email message text body" not in text
