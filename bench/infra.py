"""What every section stands on: a throwaway PostgreSQL database, free ports on 127.0.0.1, and
child processes that are always stopped (each in a process group of its own)."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import IO

import asyncpg
from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
# Where to create (and drop) the benchmark's own database; the tests' server by default.
ADMIN_URL = os.environ.get(
    "POSTROOM_BENCH_POSTGRES_URL",
    os.environ.get(
        "POSTROOM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
)
REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def dsn(url: str) -> str:
    """The asyncpg form of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class BenchError(RuntimeError):
    """The benchmark could not measure something (a process died, a deadline passed)."""


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database for this run; dropped afterwards, whatever happens."""
    name = f"postroom_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn(ADMIN_URL), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate = await asyncio.to_thread(
            subprocess.run,
            [PYTHON, "-m", "postroom", "migrate"],
            env=postroom_env(url, Path("/nonexistent")),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(f"postroom migrate failed: {migrate.stderr.decode()[-2000:]}")
        yield url
    finally:
        admin = await asyncpg.connect(dsn(ADMIN_URL), timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def postroom_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a postroom process of this run: its database, a fixed secret key, and
    write rate limits no benchmark reaches (the defaults would answer 429 after 3000 POSTs)."""
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_DATA_DIR": str(data_dir),
        "POSTROOM_SECRET_KEY": "bench-secret-key-not-for-production",
        "POSTROOM_LIMITS__RATE_LIMIT_WRITE": "1000000000/minute",
        "POSTROOM_LIMITS__RATE_LIMIT_READ": "1000000000/minute",
        # The benchmark's mail servers listen on loopback.
        "POSTROOM_DESTINATIONS__ALLOW": "127.0.0.1",
        # Its senders are example.com's, sent through the server-wide transport.
        "POSTROOM_SENDERS__ALLOWED_DOMAINS": "example.com",
    }
    env.update(extra)
    return env


def py_spy() -> str | None:
    """py-spy on PATH, in $PY_SPY, or beside this Python (installed into its venv)."""
    beside = Path(PYTHON).parent / "py-spy"
    return (
        shutil.which("py-spy")
        or os.environ.get("PY_SPY")
        or (str(beside) if beside.exists() else None)
    )


class Processes:
    """Child processes of one section: each started in its own session (so a process and the
    children it forks form one group), all stopped on exit: SIGTERM, then SIGKILL.

    With `profile_dir`, `profile(process, name)` attaches py-spy to a process (and to its
    children) for the part of the run that is measured; it writes collapsed stacks of the
    samples taken on CPU to `<profile_dir>/<name>.txt` when the process ends.
    """

    def __init__(self, logs: Path, profile_dir: Path | None = None) -> None:
        self.logs = logs
        self.profile_dir = profile_dir
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.profilers: dict[int, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str] | None = None,
        *,
        stdin: int | None = None,
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )
        self.started.append((process, log))
        return process

    def profile(self, process: subprocess.Popen[bytes], name: str) -> None:
        """From now until the process ends (nothing without profile_dir or py-spy)."""
        spy = py_spy()
        if self.profile_dir is None or spy is None:
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.profile_dir / f"{name}.txt"
        with (self.logs / f"{name}.py-spy.log").open("wb") as log:
            self.profilers[process.pid] = subprocess.Popen(
                [
                    *(spy, "record", "--gil", "--subprocesses", "-f", "raw"),
                    *("-o", str(output), "-p", str(process.pid)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_of(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 20) -> int:
        """SIGTERM to the process's group, SIGKILL if it is still there after `timeout`."""
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        # Children a process left behind in its group (uvicorn's workers) go too.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        profiler = self.profilers.pop(process.pid, None)
        if profiler is not None:
            # py-spy writes its file once the process it watches has gone.
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait(10)
        return process.returncode

    def stop_all(self) -> None:
        for process, log in reversed(self.started):
            self.stop(process)
            log.close()
        self.started.clear()


@asynccontextmanager
async def processes(logs: Path, profile_dir: Path | None = None) -> AsyncIterator[Processes]:
    group = Processes(logs, profile_dir)
    try:
        yield group
    finally:
        await asyncio.to_thread(group.stop_all)


async def wait_until(
    check: Callable[[], bool], *, within: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_http(port: int, path: str, *, within: float, alive: Callable[[], bool]) -> None:
    """Until GET `path` on 127.0.0.1:`port` answers 200 (and the server process still runs)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + within
    while True:
        if not alive():
            raise BenchError(f"the server for port {port} exited while starting")
        with suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            status = await reader.readline()
            writer.close()
            if status.split(b" ")[1:2] == [b"200"]:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"nothing answered 200 on {HOST}:{port}{path} within {within:.0f}s")
        await asyncio.sleep(0.1)


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process has had so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: [0] is the state (field 3)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on the machine, including the
    backends that have exited: a process's own user + system time, plus the time of its
    children that it has waited for (cutime + cstime). The postmaster waits for each backend
    it forked, so a backend that ends between two readings still counts, whole, in the
    second: taking the difference of two readings counts every backend's CPU in between,
    whether it lived through the window, started in it, or ended in it. (Reading only the
    processes alive at each end missed the backends a pool closes and reopens under load:
    `postroom api`'s overflow connections, several a second at 50 connections.)"""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = _stat(int(entry.name))
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")
