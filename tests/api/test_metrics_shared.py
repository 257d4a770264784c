"""/metrics of `postroom api --workers 2` (real processes): every scrape adds up both API
processes, and a `postroom worker` started with the same PROMETHEUS_MULTIPROC_DIR joins in."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests import databases as test_databases
from tests.factories import message_body
from tests.polling import eventually
from tests.test_cli import (
    POSTROOM,
    START_TIMEOUT,
    STOP_TIMEOUT,
    environment,
    free_port,
    run_command,
)

REQUESTS = 40
SCRAPES = 6


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        found = re.fullmatch(rf"{name}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)", line)
        if found is None:
            continue
        given = ",".join(sorted(found["labels"].split(",")))
        if given == wanted:
            return float(found["value"])
    return 0.0


@pytest.fixture
async def env(databases: test_databases.DatabaseFactory, tmp_path: Path) -> dict[str, str]:
    return environment(await databases.clone(), tmp_path / "data")


@pytest.fixture
async def api(env: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    with (tmp_path / "api.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            POSTROOM, "api", "--workers", "2", "--port", str(port), env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                return (await http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await eventually(answers, timeout=START_TIMEOUT, what="postroom api to answer")
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


async def _each_on_a_new_connection(url: str, count: int) -> None:
    # A new connection each: the kernel hands them to either API process.
    for _ in range(count):
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200


async def _healthz_count(url: str) -> float:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    return sample(response.text, "postroom_http_requests_total", **labels)


async def test_every_scrape_adds_up_both_api_processes(api: str) -> None:
    before = await _healthz_count(api)  # the fixture's own /healthz while it waited
    await _each_on_a_new_connection(api, REQUESTS)
    seen = [await _healthz_count(api) for _ in range(SCRAPES)]
    assert seen == [before + REQUESTS] * SCRAPES


async def test_a_worker_sharing_the_directory_is_in_the_apis_metrics(
    api: str, env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_command(env, "organizations", "create", "metrics")
    assert code == 0, err
    key = re.search(r"api key \(shown only now\): (\S+)", out)
    assert key is not None, out
    async with httpx.AsyncClient(base_url=api, headers={"REB-APIKEY": key.group(1)}) as http:
        created = await http.post("/email-messages", json=message_body(status="outbox"))
    assert created.status_code == 201, created.text
    worker_env = {
        **env,
        "PROMETHEUS_MULTIPROC_DIR": str(Path(env["POSTROOM_DATA_DIR"]) / "metrics"),
    }
    with (tmp_path / "worker.log").open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            POSTROOM, "worker", env=worker_env, stdout=log, stderr=log
        )
    try:

        async def sent_counted() -> bool:
            async with httpx.AsyncClient(base_url=api) as http:
                metrics = (await http.get("/metrics")).text
            # The .eml transport (no POSTROOM_SMTP_URL): counted by the worker, shown by the API.
            return (
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in metrics.splitlines()
                    if line.startswith("postroom_messages_sent_total{")
                )
                == 1
            )

        await eventually(sent_counted, timeout=60, what="the worker's send in the API's /metrics")
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), STOP_TIMEOUT)
