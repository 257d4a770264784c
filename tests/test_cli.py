"""The `postroom` command, run as a real process: serve, organizations create, keys create,
messages recount."""

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom import migrations
from postroom.auth import service as auth
from postroom.messages.models import MessageCount
from tests import databases as test_databases
from tests.api.test_health import drop_workers_table
from tests.factories import message_body
from tests.polling import eventually
from tests.servers.http import CLIENT_TLS

POSTROOM = str(Path(sys.executable).parent / "postroom")
START_TIMEOUT = 60  # seconds: imports, migrations and the first start of a fresh database
STOP_TIMEOUT = 30
KEY_LINE = re.compile(r"API key, shown only now: (\S+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def until_answering(url: str) -> None:
    """Waits for a postroom process started at `url` to answer /healthz."""

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                return (await http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(answers, timeout=START_TIMEOUT, what=f"{url} to answer")


def environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        POSTROOM_DATABASE_URL=database_url,
        POSTROOM_DATA_DIR=str(data_dir),
        POSTROOM_LOG_JSON="true",
        PYTHONUNBUFFERED="1",
    )
    return env


async def run_command(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        POSTROOM,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    return await process.wait(), out.decode(), err.decode()


@dataclass
class Serving:
    """A running `postroom serve`, with what it has printed so far."""

    process: asyncio.subprocess.Process
    url: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    async def read_until(
        self, stream_name: str, wanted: Callable[[str], bool], timeout: float = START_TIMEOUT
    ) -> str:
        """The first line of stdout/stderr for which `wanted` holds; fails on EOF or timeout."""
        stream = self.process.stdout if stream_name == "stdout" else self.process.stderr
        seen = self.stdout if stream_name == "stdout" else self.stderr
        assert stream is not None

        async def scan() -> str:
            while line := (await stream.readline()).decode():
                seen.append(line)
                if wanted(line):
                    return line
            raise AssertionError(f"postroom serve ended its {stream_name}: {self.output()}")

        return await asyncio.wait_for(scan(), timeout)

    async def until_listening(self) -> None:
        await self.read_until("stderr", lambda line: "Uvicorn running on" in line)

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.process.communicate(), STOP_TIMEOUT)
        self.stdout.extend(out.decode().splitlines(keepends=True))
        self.stderr.extend(err.decode().splitlines(keepends=True))

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


@pytest.fixture
async def serve_env(databases: test_databases.DatabaseFactory, tmp_path: Path) -> dict[str, str]:
    return environment(await databases.clone(), tmp_path / "data")


async def start_serve(env: dict[str, str]) -> Serving:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        POSTROOM,
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Serving(process, f"http://127.0.0.1:{port}")


@pytest.fixture
async def serving(serve_env: dict[str, str]) -> AsyncIterator[Serving]:
    served = await start_serve(serve_env)
    try:
        yield served
    finally:
        if served.process.returncode is None:
            served.process.kill()
            await asyncio.wait_for(served.process.communicate(), STOP_TIMEOUT)


def assert_stopped_cleanly(served: Serving) -> None:
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (so a supervisor sees
    # the usual signal exit): either 0 or -SIGTERM is a clean end.
    assert served.process.returncode in (0, -signal.SIGTERM), served.output()
    logs = "".join(served.stderr)
    assert "Application shutdown complete" in logs, logs
    assert "Traceback" not in logs, logs


def assert_json_logs(served: Serving) -> None:
    # POSTROOM_LOG_JSON=true: every line on stderr is one JSON object, uvicorn's included.
    assert served.stderr
    for line in served.stderr:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()


class TestServe:
    async def test_first_start_prints_a_key_that_sends_a_message_and_stops_on_sigterm(
        self, serving: Serving
    ) -> None:
        line = await serving.read_until("stdout", lambda line: KEY_LINE.search(line) is not None)
        match = KEY_LINE.search(line)
        assert match is not None
        key = match.group(1)
        await serving.until_listening()
        async with httpx.AsyncClient(
            base_url=serving.url, headers={"REB-APIKEY": key}, verify=CLIENT_TLS
        ) as http:
            response = await http.post("/email-messages", json=message_body())
        assert response.status_code == 201, response.text
        await serving.stop()
        assert_stopped_cleanly(serving)
        assert_json_logs(serving)

    async def test_second_start_on_the_same_database_prints_no_key(
        self, serving: Serving, serve_env: dict[str, str]
    ) -> None:
        await serving.until_listening()
        await serving.stop()
        assert KEY_LINE.search("".join(serving.stdout))
        again = await start_serve(serve_env)
        try:
            await again.until_listening()
        finally:
            await again.stop()
        assert_stopped_cleanly(again)
        assert "API key" not in again.output()
        assert "Created organization" not in again.output()


class TestWorkerDeath:
    """A worker that cannot work says so: `serve` does not go on accepting mail nobody delivers,
    and `worker` does not go on looking alive. Their database here lacks the workers table (as
    when the schema was changed under them), so the worker cannot write its first heartbeat."""

    async def test_serve_exits_non_zero_when_its_worker_dies(
        self, databases: test_databases.DatabaseFactory, tmp_path: Path
    ) -> None:
        url = await databases.clone()
        await drop_workers_table(url)
        served = await start_serve(environment(url, tmp_path / "data"))
        try:
            out, err = await asyncio.wait_for(served.process.communicate(), START_TIMEOUT)
        finally:
            if served.process.returncode is None:
                served.process.kill()
        assert served.process.returncode == 1, (out, err)
        logs = err.decode()
        assert "delivery worker died" in logs  # logged, with its traceback
        assert "Application shutdown complete" in logs  # an orderly stop, not a crash
        assert logs.splitlines()[-1].startswith("error: the delivery worker died ("), logs

    async def test_worker_exits_non_zero_when_it_cannot_work(
        self, databases: test_databases.DatabaseFactory, tmp_path: Path
    ) -> None:
        url = await databases.clone()
        await drop_workers_table(url)
        code, out, err = await run_command(environment(url, tmp_path / "data"), "worker")
        assert code == 1, (out, err)
        assert "delivery worker died" in err
        assert err.splitlines()[-1].startswith("error: the delivery worker died ("), err


class TestOperatorCommands:
    @pytest.fixture
    def cli_env(self, database_url: str, tmp_path: Path) -> dict[str, str]:
        # The database the shared `api_url` server uses, so its keys can be tried there.
        return environment(database_url, tmp_path / "data")

    async def test_organizations_create_prints_an_id_and_a_working_key(
        self, cli_env: dict[str, str], api_url: str
    ) -> None:
        code, out, err = await run_command(cli_env, "organizations", "create", "Acme")
        assert code == 0, err
        organization = re.search(r"organization: (org_\w+)", out)
        key = re.search(r"api key \(shown only now\): (\S+)", out)
        assert organization is not None and key is not None, out
        async with httpx.AsyncClient(
            base_url=api_url, headers={"REB-APIKEY": key.group(1)}, verify=CLIENT_TLS
        ) as http:
            response = await http.get(f"/organizations/{organization.group(1)}/email-messages")
        assert response.status_code == 200, response.text
        assert response.json() == []

    async def test_keys_create_adds_a_working_key(
        self, cli_env: dict[str, str], api_url: str, organization: auth.NewOrganization
    ) -> None:
        code, out, err = await run_command(
            cli_env, "keys", "create", organization.organization_id, "--name", "second"
        )
        assert code == 0, err
        key = re.search(r"api key \(shown only now\): (\S+)", out)
        key_id = re.search(r"api key id: (key_\w+)", out)
        assert key is not None and key_id is not None, out
        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {key.group(1)}"}, verify=CLIENT_TLS
        ) as http:
            assert (await http.get("/email-messages")).status_code == 200
            assert (await http.get(f"/api-keys/{key_id.group(1)}")).json()["description"] == (
                "second"
            )

    async def test_keys_list_and_revoke(
        self, cli_env: dict[str, str], organization: auth.NewOrganization
    ) -> None:
        org = organization.organization_id
        code, out, err = await run_command(cli_env, "keys", "create", org, "--name", "spare")
        assert code == 0, err
        spare = re.search(r"api key id: (key_\w+)", out)
        assert spare is not None
        code, out, err = await run_command(cli_env, "keys", "list", org)
        assert code == 0, err
        rows = [line.split("\t") for line in out.splitlines()]
        assert [r[2] for r in rows] == ["default", "spare"]
        assert organization.api_key not in out
        code, out, err = await run_command(cli_env, "keys", "revoke", org, spare.group(1))
        assert code == 0, err
        code, out, err = await run_command(cli_env, "keys", "list", org)
        assert [line.split("\t")[2] for line in out.splitlines()] == ["default"]
        # The last key stays: without it nobody reaches the organization.
        last = rows[0][0]
        code, out, err = await run_command(cli_env, "keys", "revoke", org, last)
        assert code != 0
        assert "last API key" in err
        assert "Traceback" not in err

    async def test_migrate_says_how_many_migrations_it_applied(self, tmp_path: Path) -> None:
        env = environment(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", tmp_path / "data")
        versions = Path(migrations.__file__).parent / "versions"
        count = len(list(versions.glob("*.py")))
        code, out, err = await run_command(env, "migrate")
        assert code == 0, err
        assert out.strip() == f"applied {count} migrations; the database is up to date"
        code, out, err = await run_command(env, "migrate")
        assert code == 0, err
        assert out.strip() == "the database was up to date: no migration to apply"

    async def test_organizations_list(
        self, cli_env: dict[str, str], organization: auth.NewOrganization
    ) -> None:
        code, out, err = await run_command(cli_env, "organizations", "list")
        assert code == 0, err
        ids = [line.split("\t")[0] for line in out.splitlines()]
        assert organization.organization_id in ids
        assert auth.SYSTEM_ORGANIZATION_ID not in ids

    async def test_keys_create_for_an_unknown_organization_fails_with_an_error(
        self, cli_env: dict[str, str]
    ) -> None:
        code, out, err = await run_command(
            cli_env, "keys", "create", "org_01JD0000000000000000000000"
        )
        assert code != 0
        assert "error:" in err
        assert "org_01JD0000000000000000000000" in err
        assert "api key" not in out
        assert "Traceback" not in err

    async def test_senders_list_and_verify_on_the_operators_word(
        self, cli_env: dict[str, str], client: httpx.AsyncClient
    ) -> None:
        created = await client.post(
            "/email-delivery-settings", json={"from": "cli@example.com", "name": "CLI"}
        )
        setting_id = created.json()["id"]
        code, out, err = await run_command(cli_env, "senders", "list", "--pending")
        assert code == 0, err
        [line] = [line for line in out.splitlines() if line.startswith(setting_id)]
        assert line.split("\t")[2:] == ["pending", "cli@example.com"]
        code, out, err = await run_command(cli_env, "senders", "verify", setting_id)
        assert code == 0, err
        assert f"{setting_id} (cli@example.com) is verified" in out
        setting = (await client.get(f"/email-delivery-settings/{setting_id}")).json()
        assert setting["status"] == "verified"
        code, out, err = await run_command(cli_env, "senders", "list", "--pending")
        assert setting_id not in out
        code, out, err = await run_command(cli_env, "senders", "verify", "mail_dst_nope")
        assert code == 1 and "error: email delivery setting mail_dst_nope not found" in err

    async def test_messages_recount_rebuilds_the_kept_counts(
        self,
        cli_env: dict[str, str],
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: auth.NewOrganization,
    ) -> None:
        await client.post("/email-messages", json=message_body())
        async with sessionmaker() as session, session.begin():
            await session.execute(
                delete(MessageCount).where(
                    MessageCount.organization_id == organization.organization_id
                )
            )
        assert (await client.get("/email-messages")).headers["pagination-total"] == "0"
        code, out, err = await run_command(
            cli_env, "messages", "recount", organization.organization_id
        )
        assert code == 0, err
        assert f"recounted the messages of {organization.organization_id}" in out
        assert (await client.get("/email-messages")).headers["pagination-total"] == "1"


class TestInvalidSettings:
    """`serve` and `worker` refuse to start on a setting they cannot work with: one line on
    stderr naming it (never quoting it: an SMTP URL carries a password), exit code 2."""

    @pytest.fixture
    def bad_env(self, tmp_path: Path) -> dict[str, str]:
        # No database is reached: the settings are refused before anything opens one.
        return environment(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", tmp_path / "data")

    @pytest.mark.parametrize("command", ["serve", "worker"])
    @pytest.mark.parametrize(
        "url",
        [
            "smtp://mailer:hunter2-secret@mail.example.com:notaport",  # unparseable
            "http://mailer:hunter2-secret@mail.example.com",  # unknown scheme
            "smtp://mailer:hunter2-secret@:25",  # no host
            "smtp://mailer:hunter2-secret/x@mail.example.com",  # '/' in the password, unquoted
        ],
    )
    async def test_a_bad_smtp_url_is_refused_in_one_line_without_its_password(
        self, bad_env: dict[str, str], command: str, url: str
    ) -> None:
        code, out, err = await run_command({**bad_env, "POSTROOM_SMTP_URL": url}, command)
        assert code == 2, (out, err)
        assert err.count("\n") == 1, err
        assert err.startswith("error: invalid settings: POSTROOM_SMTP_URL: "), err
        assert "hunter2" not in out + err
        assert "Traceback" not in err

    @pytest.mark.parametrize("command", ["serve", "worker"])
    async def test_a_missing_ca_file_is_refused(
        self, bad_env: dict[str, str], command: str, tmp_path: Path
    ) -> None:
        missing = tmp_path / "no-such-ca.pem"
        code, out, err = await run_command(
            {**bad_env, "POSTROOM_DELIVERY__SMTP_CA_FILE": str(missing)}, command
        )
        assert code == 2, (out, err)
        setting = "POSTROOM_DELIVERY__SMTP_CA_FILE"
        assert err == f"error: invalid settings: {setting}: no such file: {missing}\n"

    async def test_a_ca_file_that_is_no_pem_bundle_is_refused(
        self, bad_env: dict[str, str], tmp_path: Path
    ) -> None:
        garbage = tmp_path / "ca.pem"
        garbage.write_text("not a certificate\n")
        code, out, err = await run_command(
            {**bad_env, "POSTROOM_DELIVERY__SMTP_CA_FILE": str(garbage)}, "worker"
        )
        assert code == 2, (out, err)
        assert "POSTROOM_DELIVERY__SMTP_CA_FILE: not a readable PEM bundle" in err
        assert err.count("\n") == 1, err

    async def test_any_invalid_setting_is_one_line_not_a_traceback(
        self, bad_env: dict[str, str]
    ) -> None:
        code, out, err = await run_command(
            {**bad_env, "POSTROOM_PORT": "eighty", "POSTROOM_DELIVERY__BATCH_SIZE": "0"}, "serve"
        )
        assert code == 2, (out, err)
        assert err.count("\n") == 1, err
        assert "Traceback" not in err
        assert "POSTROOM_PORT: " in err
        assert "POSTROOM_DELIVERY__BATCH_SIZE: " in err
