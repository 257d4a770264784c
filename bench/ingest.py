"""Ingest: sustained POST /email-messages (status outbox) from 50 keep-alive connections against
`postroom api --workers N` on PostgreSQL, and the same load against the two baselines of
bench/baseline_app.py: `baseline` (parse and answer) and `durable` (parse, INSERT the same row
into the same table with one prepared statement, commit, answer). Against postroom, in the
same process right after, the same message through POST /email-message-batches, in batches
of 100 and 500 from a few connections: messages/s beside the single POSTs'."""

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench import payload
from bench.infra import (
    PYTHON,
    BenchError,
    Processes,
    cpu_seconds,
    dsn,
    free_port,
    postgres_cpu,
    postroom_env,
    wait_for_http,
)
from bench.loadgen import LoadResult, run_load


@dataclass(frozen=True)
class IngestRun:
    server: str
    processes: int
    load: LoadResult
    server_cpu_seconds: float
    postgres_cpu_seconds: float
    stored: int | None  # rows the run added (not the trivial baseline): at least every 201
    # PostgreSQL sessions opened meanwhile (backends forked), about: a pool that closes and
    # reopens connections under load costs PostgreSQL CPU for each
    postgres_sessions: int
    batches: tuple["BatchRun", ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "server": self.server,
            "processes": self.processes,
            **self.load.as_dict(),
            "server_cpu_seconds": round(self.server_cpu_seconds, 2),
            "server_cpu_ms_per_request": round(
                self.server_cpu_seconds * 1000 / max(1, self.load.requests), 3
            ),
            "postgres_cpu_seconds": round(self.postgres_cpu_seconds, 2),
            "stored": self.stored,
            "postgres_sessions_opened": self.postgres_sessions,
            "batches": [b.as_dict() for b in self.batches],
        }


@dataclass(frozen=True)
class BatchRun:
    """POST /email-message-batches of `size` messages each; every answer 200 and every item
    201, checked against the rows stored."""

    size: int
    load: LoadResult
    server_cpu_seconds: float
    stored: int

    @property
    def messages_per_second(self) -> float:
        return self.load.requests * self.size / self.load.seconds if self.load.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "size": self.size,
            **self.load.as_dict(),
            "messages_per_second": round(self.messages_per_second, 1),
            "server_cpu_ms_per_message": round(
                self.server_cpu_seconds * 1000 / max(1, self.load.requests * self.size), 3
            ),
            "stored": self.stored,
        }


def group_pids(leader: int) -> list[int]:
    """Every process in the process group `leader` started (uvicorn's supervisor and workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            pids.append(int(entry.name))
    return pids


def group_cpu(leader: int) -> float:
    total = 0.0
    for pid in group_pids(leader):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def posting(
    port: int, api_key: str, connections: int, client: str
) -> Callable[[float], LoadResult]:
    """The ingest load on 127.0.0.1:`port`, for a given number of seconds: POST
    /email-messages of the bench's receipt, status outbox, every answer expected 201."""
    body = payload.request_body()
    headers = {"Content-Type": "application/json", "REB-APIKEY": api_key}

    def load(seconds: float) -> LoadResult:
        return run_load(
            port=port,
            path="/email-messages",
            method="POST",
            body=body,
            headers=headers,
            connections=connections,
            seconds=seconds,
            expect=201,
            client=client,
        )

    return load


def posting_batches(
    port: int, api_key: str, connections: int, client: str, size: int
) -> Callable[[float], LoadResult]:
    """POST /email-message-batches of `size` copies of the bench's receipt, each answered 200
    (an item refused would still be a 200: the stored rows are checked after)."""
    body = payload.batch_body(size)
    headers = {"Content-Type": "application/json", "REB-APIKEY": api_key}

    def load(seconds: float) -> LoadResult:
        return run_load(
            port=port,
            path="/email-message-batches",
            method="POST",
            body=body,
            headers=headers,
            connections=connections,
            seconds=seconds,
            expect=200,
            client=client,
        )

    return load


async def _measure_batches(
    process_pid: int,
    *,
    name: str,
    port: int,
    database_url: str,
    api_key: str,
    sizes: tuple[int, ...],
    connections: int,
    seconds: float,
    client: str,
) -> tuple[BatchRun, ...]:
    runs = []
    for size in sizes:
        load = posting_batches(port, api_key, connections, client, size)
        before, _ = await _count(database_url)
        cpu_before = group_cpu(process_pid)
        result = await asyncio.to_thread(load, seconds)
        cpu = group_cpu(process_pid) - cpu_before
        if result.errors:
            raise BenchError(f"{name}: {result.errors} batches of {size} failed; see {name}.log")
        after, _ = await _count(database_url)
        if after - before < result.requests * size:
            raise BenchError(
                f"{name}: {result.requests} batches of {size} answered but {after - before} "
                "messages stored"
            )
        runs.append(BatchRun(size, result, cpu, after - before))
    return tuple(runs)


async def _count(database_url: str) -> tuple[int, int]:
    """Messages stored, and sessions opened so far on the database (pg_stat_database, which
    a backend updates within a second or so, and at its end)."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        messages = await connection.fetchval("SELECT count(*) FROM email_messages")
        sessions = await connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(messages), int(sessions)
    finally:
        await connection.close()


async def measure(
    group: Processes,
    *,
    server: str,
    processes: int,
    database_url: str,
    data_dir: Path,
    api_key: str,
    organization_id: str,
    connections: int,
    seconds: float,
    warmup: float,
    client: str,
    batch_sizes: tuple[int, ...] = (),
    batch_connections: int = 4,
) -> IngestRun:
    port = free_port()
    name = f"ingest-{server}-{processes}"
    if server == "postroom":
        args = [PYTHON, "-m", "postroom", "api", "--workers", str(processes), "--port", str(port)]
        env = postroom_env(database_url, data_dir)
    else:
        args = [PYTHON, "-m", "bench.baseline_app", str(port), str(processes)]
        env = dict(os.environ)
        if server == "durable":
            env.update(BENCH_BASELINE_DSN=dsn(database_url), BENCH_BASELINE_ORG=organization_id)
    process = group.start(name, args, env)
    try:
        await wait_for_http(port, "/healthz", within=60, alive=lambda: process.poll() is None)
        load = posting(port, api_key, connections, client)
        if warmup > 0:
            await asyncio.to_thread(load, warmup)
        stores = server != "baseline"
        before, sessions_before = await _count(database_url)
        group.profile(process, name)
        cpu_before, pg_before = group_cpu(process.pid), postgres_cpu()
        result = await asyncio.to_thread(load, seconds)
        cpu, pg_cpu = group_cpu(process.pid) - cpu_before, postgres_cpu() - pg_before
        if result.errors:
            raise BenchError(f"{name}: {result.errors} requests failed; see {name}.log")
        after, sessions_after = await _count(database_url)
        stored = after - before if stores else None
        if stored is not None and stored < result.requests:
            raise BenchError(f"{name}: {result.requests} answered 201 but {stored} stored")
        # Less the first reading's own session, counted once it has ended.
        sessions = sessions_after - sessions_before - 1
        batches: tuple[BatchRun, ...] = ()
        if server == "postroom" and batch_sizes:
            batches = await _measure_batches(
                process.pid,
                name=name,
                port=port,
                database_url=database_url,
                api_key=api_key,
                sizes=batch_sizes,
                connections=batch_connections,
                seconds=seconds,
                client=client,
            )
        return IngestRun(server, processes, result, cpu, pg_cpu, stored, sessions, batches)
    finally:
        await asyncio.to_thread(group.stop, process)
