"""Rebilly's own JavaScript SDK (from npm, pinned in package-lock.json) against a real
`postroom serve`: each `*.mjs` script here is one test, run with node, passing when it exits 0.

The scripts get the server's URL, an API key and its organization id, and the port of a real
SMTP server for credentials that send (POSTROOM_URL, POSTROOM_API_KEY, POSTROOM_ORGANIZATION_ID,
POSTROOM_SMTP_PORT). `python3 dev.py test` installs node (Debian's package) and the SDK
(`npm ci`) when they are missing."""

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import databases as test_databases
from tests.servers.smtp import SmtpServer, smtp_server
from tests.test_cli import STOP_TIMEOUT, Serving, environment, run_command, start_serve

HERE = Path(__file__).parent
SCRIPTS = sorted(p for p in HERE.glob("*.mjs") if p.name != "lib.mjs")
SCRIPT_TIMEOUT = 180


def _sdk_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (python3 dev.py test installs it)"
    if not (HERE / "node_modules" / "rebilly-js-sdk").is_dir():
        return "the SDK is not installed: run `npm ci` in tests/sdk (python3 dev.py test does)"
    return None


@pytest.fixture(scope="module")
def sdk() -> None:
    missing = _sdk_missing()
    if missing is None:
        return
    if os.environ.get("POSTROOM_REQUIRE_POSTGRES") == "1":  # CI: required, not skipped
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def served(
    sdk: None, databases: test_databases.DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Serving, dict[str, str]]]:
    env = environment(await databases.clone(), tmp_path_factory.mktemp("sdk") / "data")
    code, out, err = await run_command(env, "organizations", "create", "SDK")
    assert code == 0, err
    organization = re.search(r"organization: (org_\w+)", out)
    key = re.search(r"api key \(shown only now\): (\S+)", out)
    assert organization is not None and key is not None, out
    serving = await start_serve(env)
    drains: list[asyncio.Task[None]] = []
    try:
        await serving.until_listening()
        # Read what the server prints from now on, or its pipes fill and it stops.
        drains = [asyncio.create_task(_drain(serving, name)) for name in ("stdout", "stderr")]
        yield (
            serving,
            {
                "POSTROOM_URL": serving.url,
                "POSTROOM_API_KEY": key.group(1),
                "POSTROOM_ORGANIZATION_ID": organization.group(1),
            },
        )
    finally:
        if serving.process.returncode is None:
            serving.process.kill()
            await asyncio.wait_for(serving.process.wait(), STOP_TIMEOUT)
        for drain in drains:
            drain.cancel()


async def _drain(serving: Serving, name: str) -> None:
    stream = serving.process.stdout if name == "stdout" else serving.process.stderr
    kept = serving.stdout if name == "stdout" else serving.stderr
    assert stream is not None
    while line := await stream.readline():
        kept.append(line.decode(errors="replace"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
async def test_sdk_script(
    script: Path, served: tuple[Serving, dict[str, str]], smtp: SmtpServer
) -> None:
    serving, given = served
    env = {**os.environ, **given, "POSTROOM_SMTP_PORT": str(smtp.port)}
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        cwd=HERE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), SCRIPT_TIMEOUT)
    assert process.returncode == 0, f"{script.name}:\n{out.decode()}\n{err.decode()}"
    assert serving.process.returncode is None, serving.output()
