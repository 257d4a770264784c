"""A rehearsal of several hosts, on one machine, as deploy/ sets them up: two `postroom api` and
two `postroom worker` processes, each with a data directory of its own, sharing nothing but
PostgreSQL, Redis and the object store (SeaweedFS), and the settings of deploy/postroom.env."""

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests import databases as test_databases
from tests.api.test_ratelimit import REDIS_URL
from tests.factories import message_body
from tests.polling import eventually
from tests.servers.s3 import S3Server
from tests.servers.smtp import SmtpServer, smtp_server
from tests.test_cli import (
    POSTROOM,
    STOP_TIMEOUT,
    environment,
    free_port,
    run_command,
    until_answering,
)

pytestmark = pytest.mark.skipif(
    test_databases.BACKEND != "postgresql", reason="several hosts share PostgreSQL"
)

WRITES_PER_MINUTE = 12


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def host_env(shared: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {**environment(shared["POSTROOM_DATABASE_URL"], data_dir), **shared}


async def _start(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as output:
        return await asyncio.create_subprocess_exec(
            POSTROOM, *args, env=env, stdout=output, stderr=output
        )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


@pytest.fixture
async def hosts(
    databases: test_databases.DatabaseFactory, s3: S3Server, smtp: SmtpServer, tmp_path: Path
) -> AsyncIterator[tuple[list[httpx.AsyncClient], str]]:
    """Two API clients (one per API host) with one organization's key, and the key."""
    shared = {
        "POSTROOM_DATABASE_URL": await databases.clone(),
        "POSTROOM_SECRET_KEY": "rehearsal-secret-key-shared-by-every-host",
        "POSTROOM_LIMITS__RATE_LIMIT_STORAGE_URL": REDIS_URL,
        "POSTROOM_LIMITS__RATE_LIMIT_WRITE": f"{WRITES_PER_MINUTE}/minute",
        "POSTROOM_FILES__STORAGE_URL": f"s3://{s3.bucket}/{s3.new_prefix()}",
        "POSTROOM_FILES__S3_ENDPOINT_URL": s3.endpoint,
        "POSTROOM_FILES__S3_REGION": s3.region,
        "POSTROOM_FILES__S3_ACCESS_KEY_ID": s3.access_key_id,
        "POSTROOM_FILES__S3_SECRET_ACCESS_KEY": s3.secret_access_key,
        "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "POSTROOM_DESTINATIONS__ALLOW": "127.0.0.1",
        "POSTROOM_SENDERS__ALLOWED_DOMAINS": "example.com",
        "POSTROOM_DELIVERY__POLL_SECONDS": "0.2",
    }
    envs = {name: host_env(shared, tmp_path / name) for name in ("api1", "api2", "w1", "w2")}
    code, out, err = await run_command(envs["api1"], "organizations", "create", "rehearsal")
    assert code == 0, err
    key = re.search(r"api key \(shown only now\): (\S+)", out)
    assert key is not None, out
    async with AsyncExitStack() as stack:
        urls = []
        for name in ("api1", "api2"):
            port = free_port()
            process = await _start(
                ["api", "--port", str(port)], envs[name], tmp_path / f"{name}.log"
            )
            stack.push_async_callback(_stop, process)
            urls.append(f"http://127.0.0.1:{port}")
        for name in ("w1", "w2"):
            process = await _start(["worker"], envs[name], tmp_path / f"{name}.log")
            stack.push_async_callback(_stop, process)
        for url in urls:
            await until_answering(url)
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers={"REB-APIKEY": key.group(1)}, timeout=60)
            )
            for url in urls
        ]
        yield clients, key.group(1)
    # Each host used only its own data directory: no file content in any of them.
    for name in envs:
        blobs = tmp_path / name / "blobs"
        assert not blobs.exists() or not any(blobs.rglob("*-*")), name


async def test_a_file_crosses_hosts_and_goes_out_once(
    hosts: tuple[list[httpx.AsyncClient], str], smtp: SmtpServer
) -> None:
    (api1, api2), _ = hosts
    content = os.urandom(3 * 1024 * 1024)
    uploaded = await api1.post("/files", files={"file": ("report.bin", content)})
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    created = await api2.post(
        "/email-messages",
        json=message_body(
            status="outbox",
            to=["someone@example.com"],
            attachments=[{"resourceType": "file", "resourceId": file_id}],
        ),
    )
    assert created.status_code == 201, created.text
    message_id = created.json()["id"]

    async def sent() -> bool:
        found = (await api1.get(f"/email-messages/{message_id}")).json()
        assert found["status"] in ("outbox", "sent"), found
        return bool(found["status"] == "sent")

    await eventually(sent, timeout=60, what="the message sent by one of the workers")
    assert len(smtp.received) == 1
    attached = [part.get_content() for part in smtp.received[0].message.iter_attachments()]
    assert [hashlib.sha256(a).hexdigest() for a in attached] == [
        hashlib.sha256(content).hexdigest()
    ]
    download = await api1.get(f"/files/{file_id}/download")
    assert download.status_code == 200
    assert download.content == content


async def test_rate_limits_count_both_apis(hosts: tuple[list[httpx.AsyncClient], str]) -> None:
    (api1, api2), _ = hosts
    statuses = []
    for n in range(WRITES_PER_MINUTE + 4):
        client = (api1, api2)[n % 2]
        response = await client.post("/email-messages", json=message_body())
        statuses.append(response.status_code)
    # One budget for the key, whichever API answers: writes past it are refused on both.
    assert statuses.count(201) == WRITES_PER_MINUTE, statuses
    assert set(statuses[WRITES_PER_MINUTE:]) == {429}, statuses


async def test_an_idempotency_key_is_honoured_across_apis(
    hosts: tuple[list[httpx.AsyncClient], str],
) -> None:
    (api1, api2), _ = hosts
    headers = {"Idempotency-Key": "rehearsal-order-1"}
    first = await api1.post("/email-messages", json=message_body(), headers=headers)
    again = await api2.post("/email-messages", json=message_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    listed = await api2.get("/email-messages")
    assert [m["id"] for m in listed.json()] == [first.json()["id"]]
