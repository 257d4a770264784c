"""Ingest into `postroom serve`, the one-machine mode: the API and its embedded delivery worker
in one process, on SQLite in a fresh data directory, with nothing configured but the API key
(POSTROOM_API_KEY) and rate limits no benchmark reaches.

The load is the ingest section's (bench/ingest.py: the same client, payload and connection
count); the trivial endpoint it is compared with is that section's, one process. The worker
delivers as it would out of the box, writing each message to an .eml file in the data
directory (fsynced) while the load runs: that is part of what serve costs, and its CPU is in
the figure. Every 201 must be a stored row (read from the SQLite file once serve has stopped).
"""

import asyncio
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.infra import PYTHON, BenchError, Processes, cpu_seconds, free_port, wait_for_http
from bench.ingest import posting
from bench.loadgen import LoadResult
from postroom.auth import service as auth


@dataclass(frozen=True)
class ServeRun:
    load: LoadResult
    server_cpu_seconds: float  # of the serve process: API, embedded worker, their threads
    stored: int  # rows the measured part added: at least every 201
    delivered: int  # messages the embedded worker wrote to .eml files meanwhile

    def as_dict(self) -> dict[str, object]:
        return {
            "server": "postroom serve (SQLite)",
            "processes": 1,
            **self.load.as_dict(),
            "server_cpu_seconds": round(self.server_cpu_seconds, 2),
            "server_cpu_ms_per_request": round(
                self.server_cpu_seconds * 1000 / max(1, self.load.requests), 3
            ),
            "stored": self.stored,
            "delivered_while_measured": self.delivered,
        }


def serve_env(data_dir: Path, api_key: str) -> dict[str, str]:
    """No POSTROOM_* setting of the caller's (a database URL would take serve off SQLite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        POSTROOM_DATA_DIR=str(data_dir),
        POSTROOM_API_KEY=api_key,
        POSTROOM_LIMITS__RATE_LIMIT_WRITE="1000000000/minute",
        POSTROOM_LIMITS__RATE_LIMIT_READ="1000000000/minute",
    )
    return env


def _counts(database: Path) -> dict[str, int]:
    """Messages by status, read from the SQLite file (WAL: beside a running serve, too)."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        rows = connection.execute("SELECT status, count(*) FROM email_messages GROUP BY status")
        return {str(status): int(n) for status, n in rows}
    finally:
        connection.close()


async def measure(
    group: Processes, *, connections: int, seconds: float, warmup: float, client: str
) -> ServeRun:
    name = "serve-sqlite"
    api_key = auth.generate_key()
    with tempfile.TemporaryDirectory(prefix="postroom-bench-serve-") as tmp:
        data_dir = Path(tmp)
        database = data_dir / "postroom.db"
        port = free_port()
        process = group.start(
            name,
            [PYTHON, "-m", "postroom", "serve", "--port", str(port)],
            serve_env(data_dir, api_key),
        )
        try:
            # serve migrates the new database and creates the organization first.
            await wait_for_http(port, "/healthz", within=60, alive=lambda: process.poll() is None)
            load = posting(port, api_key, connections, client)
            if warmup > 0:
                await asyncio.to_thread(load, warmup)
            before = await asyncio.to_thread(_counts, database)
            group.profile(process, name)
            cpu_before = cpu_seconds(process.pid)
            result = await asyncio.to_thread(load, seconds)
            cpu = cpu_seconds(process.pid) - cpu_before
            after = await asyncio.to_thread(_counts, database)
        finally:
            code = await asyncio.to_thread(group.stop, process)
        if result.errors:
            raise BenchError(f"{name}: {result.errors} requests failed; see {name}.log")
        if code not in (0, -15):  # uvicorn raises SIGTERM again once it has shut down
            raise BenchError(f"{name}: postroom serve exited with {code}; see {name}.log")
        final = await asyncio.to_thread(_counts, database)
    stored = sum(final.values()) - sum(before.values())
    if stored < result.requests:
        raise BenchError(f"{name}: {result.requests} answered 201 but {stored} stored")
    if final.get("failed"):
        raise BenchError(f"{name}: the embedded worker failed {final['failed']} messages")
    delivered = after.get("sent", 0) - before.get("sent", 0)
    return ServeRun(result, cpu, stored, delivered)
