"""/metrics of `postroom api --workers 2` (real processes): every scrape adds up both API
processes; a `postroom worker` started with the same PROMETHEUS_MULTIPROC_DIR joins in, and one
started with --metrics-port serves its own."""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import multiprocess

from tests import databases as test_databases
from tests.factories import message_body
from tests.polling import eventually
from tests.test_cli import (
    POSTROOM,
    STOP_TIMEOUT,
    environment,
    free_port,
    run_command,
    until_answering,
)

REQUESTS = 40
# Rounds of REQUESTS until each API process has answered some (the kernel picks which accepts).
ROUNDS = 10
SCRAPES = 6
POST_LABELS = {"method": "POST", "route": "/email-messages", "status": "201"}


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


def total(metrics: str, name: str) -> float:
    """The sum of every sample of `name`, whatever its labels."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f"{name}{{")
    )


def metrics_directory(env: dict[str, str]) -> Path:
    return Path(env["POSTROOM_DATA_DIR"]) / "metrics"


def posts_by_process(directory: Path) -> dict[int, float]:
    """POSTs answered 201 by each process, read from its own file (as prometheus_client does)."""
    answered: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        merged = multiprocess.MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        for metric in merged:
            for found in metric.samples:
                if found.name == "postroom_http_requests_total" and found.labels == POST_LABELS:
                    answered[pid] = found.value
    return answered


@asynccontextmanager
async def running_api(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    port = free_port()
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            POSTROOM, "api", "--workers", "2", "--port", str(port), env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"

    try:
        await until_answering(url)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


@pytest.fixture
async def env(databases: test_databases.DatabaseFactory, tmp_path: Path) -> dict[str, str]:
    return environment(await databases.clone(), tmp_path / "data")


@pytest.fixture
async def api(env: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    async with running_api(env, tmp_path / "api.log") as url:
        yield url


@pytest.fixture
async def key(env: dict[str, str]) -> str:
    code, out, err = await run_command(env, "organizations", "create", "metrics")
    assert code == 0, err
    found = re.search(r"api key \(shown only now\): (\S+)", out)
    assert found is not None, out
    return found.group(1)


async def _post_each_on_a_new_connection(url: str, key: str, count: int) -> None:
    # A new connection each: the kernel hands them to either API process.
    for _ in range(count):
        async with httpx.AsyncClient(base_url=url, headers={"REB-APIKEY": key}) as http:
            created = await http.post("/email-messages", json=message_body())
            assert created.status_code == 201, created.text


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_scrape_adds_up_both_api_processes(
    api: str, key: str, env: dict[str, str]
) -> None:
    sent = 0
    for _ in range(ROUNDS):
        await _post_each_on_a_new_connection(api, key, REQUESTS)
        sent += REQUESTS
        if len(posts_by_process(metrics_directory(env))) == 2:
            break
    answered = posts_by_process(metrics_directory(env))
    assert len(answered) == 2, f"one API process answered all {sent} POSTs: {answered}"
    assert sum(answered.values()) == sent
    for _ in range(SCRAPES):
        metrics = await _scrape(api)
        assert sample(metrics, "postroom_http_requests_total", **POST_LABELS) == sent
        assert sample(metrics, "postroom_messages_created_total", status="draft") == sent


async def test_a_restarted_api_starts_from_what_running_processes_left(
    env: dict[str, str], key: str, tmp_path: Path
) -> None:
    directory = metrics_directory(env)
    async with running_api(env, tmp_path / "api.log") as url:
        await _post_each_on_a_new_connection(url, key, 3)
        assert sample(await _scrape(url), "postroom_http_requests_total", **POST_LABELS) == 3
        first_run = {path.name for path in directory.iterdir()}
    # Each process's live gauges left with it (mark_process_dead); its counters stay.
    assert not list(directory.glob("gauge_live*")), sorted(p.name for p in directory.iterdir())
    assert sum(posts_by_process(directory).values()) == 3
    async with running_api(env, tmp_path / "api.log") as url:
        # Cleaned at start: the first run's files are gone, and counting starts again.
        assert not first_run & {path.name for path in directory.iterdir()}
        metrics = await _scrape(url)
        assert sample(metrics, "postroom_http_requests_total", **POST_LABELS) == 0


async def test_a_worker_sharing_the_directory_is_in_the_apis_metrics(
    api: str, key: str, env: dict[str, str], tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=api, headers={"REB-APIKEY": key}) as http:
        created = await http.post("/email-messages", json=message_body(status="outbox"))
    assert created.status_code == 201, created.text
    worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_directory(env))}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            POSTROOM, "worker", env=worker_env, stdout=log, stderr=log
        )
    try:

        async def sent_counted() -> bool:
            # The .eml transport (no POSTROOM_SMTP_URL): counted by the worker, shown by the API.
            return total(await _scrape(api), "postroom_messages_sent_total") == 1

        await eventually(sent_counted, timeout=60, what="the worker's send in the API's /metrics")
    finally:
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), STOP_TIMEOUT) == 0
    # A worker that has ended stays in the sum: totals do not go down.
    assert total(await _scrape(api), "postroom_messages_sent_total") == 1
    assert not list(metrics_directory(env).glob(f"gauge_live*_{worker.pid}.db"))


async def test_a_worker_with_a_metrics_port_serves_its_own(
    api: str, key: str, env: dict[str, str], tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=api, headers={"REB-APIKEY": key}) as http:
        created = await http.post("/email-messages", json=message_body(status="outbox"))
    assert created.status_code == 201, created.text
    port = free_port()
    with (tmp_path / "worker.log").open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            POSTROOM, "worker", "--metrics-port", str(port), env=env, stdout=log, stderr=log
        )
    try:

        async def sent_counted() -> bool:
            try:
                own = await _scrape(f"http://127.0.0.1:{port}")
            except httpx.TransportError:
                return False
            return total(own, "postroom_messages_sent_total") == 1

        await eventually(sent_counted, timeout=60, what="the worker's send on its metrics port")
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), STOP_TIMEOUT)
    # Not shared: the API's /metrics has the API's processes only.
    assert total(await _scrape(api), "postroom_messages_sent_total") == 0
