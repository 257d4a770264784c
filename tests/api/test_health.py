"""/healthz, /readyz, /metrics (api/health.py, api/metrics.py) and request logs."""

import json
import logging
import re

import httpx
import pytest

from postroom.auth.service import NewOrganization
from postroom.core.logging import JsonFormatter
from tests.api.conftest import ApiFactory
from tests.databases import DatabaseFactory
from tests.factories import make_message
from tests.harness import HarnessFactory
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

    async def test_readyz_is_ok_on_a_migrated_database(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/readyz")
        assert response.status_code == 200

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
