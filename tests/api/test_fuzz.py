"""Property-based fuzzing of the whole API with schemathesis, against the app's own OpenAPI
document: no server error, and every answer as documented (status, content type, headers,
body schema). The example count and seed come from .ci/run."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.app import create_app
from postroom.auth.service import NewOrganization
from postroom.core.clock import SystemClock
from postroom.delivery import service as delivery
from postroom.delivery.models import WorkerHeartbeat
from postroom.settings import DeliverySettings
from tests.conftest import make_settings
from tests.servers.http import serve_in_thread

EXAMPLES = os.environ.get("POSTROOM_FUZZ_EXAMPLES", "10")
SEED = os.environ.get("POSTROOM_FUZZ_SEED", "20261125")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "allow_header_conformance",
    ]
)


@pytest.fixture
async def api_url(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[str]:
    """An API whose database has a live worker for the whole run: the fuzzer's messages (and
    any an earlier test left in outbox) then leave /readyz ready, not a 503 it would count as a
    server error. The worker's row is the fuzz test's own and is removed after it."""
    window = DeliverySettings(worker_stale_seconds=24 * 3600)
    fuzzed = make_settings(database_url, tmp_path_factory.mktemp("fuzz"), delivery=window)
    clock = SystemClock()
    worker = delivery.WorkerRecord("fuzz", "fuzz", os.getpid(), "test", clock.now())
    async with sessionmaker() as session, session.begin():
        await delivery.worker_seen(session, worker, clock.now())
    try:
        with serve_in_thread(create_app(fuzzed)) as url:
            yield url
    finally:
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == "fuzz"))


class TestFuzz:
    def test_no_server_errors_and_every_answer_matches_the_schema(
        self, api_url: str, organization: NewOrganization, tmp_path: Path
    ) -> None:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{api_url}/openapi.json",
                "--header",
                f"REB-APIKEY: {organization.api_key}",
                "--checks",
                CHECKS,
                "--max-examples",
                EXAMPLES,
                "--seed",
                SEED,
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert " passed" in result.stdout
