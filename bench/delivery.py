"""Delivery: N queued messages delivered to the SMTP sink by P `postroom worker` processes, and
the same N pre-built messages sent by P bare aiosmtplib clients with the same connections each.

A worker run: the workers start on an empty queue and poll it; N rows go into the outbox in
one COPY, whose commit starts the clock; it stops when the outbox is empty. Then every message
must be `sent`, with exactly one attempt, or the run fails.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import payload
from bench.infra import (
    PYTHON,
    BenchError,
    Processes,
    cpu_seconds,
    dsn,
    peak_rss_mib,
    postgres_cpu,
    postroom_env,
    wait_until,
)
from bench.sink import Sink

# Each worker's pool: the default of POSTROOM_DELIVERY__CONNECTIONS_PER_CREDENTIAL.
CONNECTIONS_PER_WORKER = 4


@dataclass(frozen=True)
class DeliveryRun:
    sender: str  # "postroom worker" or "aiosmtplib baseline"
    processes: int
    connections: int
    messages: int
    seconds: float
    cpu_seconds: float  # of the senders, summed
    sink_cpu_seconds: float
    postgres_cpu_seconds: float
    peak_rss_mib: float | None  # the largest of the senders' peaks (workers only)
    # (messages recorded, the worker's peak RSS then) at each checkpoint asked for
    peaks_on_the_way: tuple[tuple[int, float], ...] = ()

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "sender": self.sender,
            "processes": self.processes,
            "connections": self.connections,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "sender_cpu_ms_per_message": round(self.cpu_seconds * 1000 / self.messages, 3),
            "sink_cpu_seconds": round(self.sink_cpu_seconds, 2),
            "sink_cpu_ms_per_message": round(self.sink_cpu_seconds * 1000 / self.messages, 3),
            "postgres_cpu_seconds": round(self.postgres_cpu_seconds, 2),
            "postgres_cpu_ms_per_message": round(
                self.postgres_cpu_seconds * 1000 / self.messages, 3
            ),
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
            "peaks_on_the_way": [[n, round(mib, 1)] for n, mib in self.peaks_on_the_way],
        }


async def copy_outbox(
    database_url: str, organization_id: str, count: int, rows: list[tuple[Any, ...]] | None = None
) -> None:
    """`count` receipts into the outbox, due now; or `rows`, made by payload.outbox_rows
    beforehand (and due when they were made)."""
    now = datetime.now(UTC)
    if rows is None:
        rows = list(payload.outbox_rows(organization_id, count, now))
    connection = await asyncpg.connect(dsn(database_url))
    try:
        async with connection.transaction():
            await connection.copy_records_to_table(
                "email_messages", records=rows, columns=payload.COLUMNS
            )
            await connection.copy_records_to_table(
                "delivery_queue",
                records=payload.queue_rows(rows, now),
                columns=payload.QUEUE_COLUMNS,
            )
    finally:
        await connection.close()


async def _scalar(database_url: str, sql: str, *args: object) -> int:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        return int(await connection.fetchval(sql, *args))
    finally:
        await connection.close()


async def reset(database_url: str) -> None:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(
            "TRUNCATE delivery_attempts, email_messages, email_message_counts CASCADE"
        )
    finally:
        await connection.close()


async def run_workers(
    group: Processes,
    *,
    workers: int,
    messages: int,
    database_url: str,
    organization_id: str,
    data_dir: Path,
    sink: Sink,
    label: str,
    extra_env: dict[str, str] | None = None,
    checkpoints: tuple[int, ...] = (),
) -> DeliveryRun:
    """With `checkpoints`, the workers' peak RSS is also read as soon as that many messages
    have been recorded."""
    await reset(database_url)
    env = postroom_env(
        database_url,
        data_dir,
        POSTROOM_SMTP_URL=sink.url,
        # Idle workers look for due messages every 0.1 s instead of every second, so that the
        # clock starts within 0.1 s of the queue filling. Everything else stays the default.
        POSTROOM_DELIVERY__POLL_SECONDS="0.1",
        **(extra_env or {}),
    )
    names = [f"{label}-worker-{i}" for i in range(workers)]
    started = [group.start(name, [PYTHON, "-m", "postroom", "worker"], env) for name in names]
    try:
        await wait_until(
            lambda: (
                all("delivery worker started" in group.log_of(n) for n in names)
                or any(p.poll() is not None for p in started)
            ),
            within=60,
            what="the workers to start",
        )
        if any(p.poll() is not None for p in started):
            raise BenchError(f"a worker exited while starting; see {names[0]}.log")
        for process, name in zip(started, names, strict=True):
            group.profile(process, name)
        sink_cpu = _cpu_or_zero(sink.pid)
        cpu = sum(cpu_seconds(p.pid) for p in started)
        await copy_outbox(database_url, organization_id, messages)
        # After the COPY: loading the queue is the bench's work, not the workers'.
        pg_cpu = postgres_cpu()
        clock = time.monotonic()
        deadline = clock + max(120.0, messages / 20)
        # Messages not yet recorded: the narrow queue's rows. Counting the outbox's rows in
        # email_messages instead, every 0.05 s, cost PostgreSQL as much CPU as a fifth of the
        # delivery it watched (wide rows, rewritten as they are sent), counted as postroom's.
        outbox = "SELECT count(*) FROM delivery_queue"
        waiting = sorted(checkpoints)
        peaks: list[tuple[int, float]] = []
        while left := await _scalar(database_url, outbox):
            while waiting and messages - left >= waiting[0]:
                peaks.append((messages - left, max(peak_rss_mib(p.pid) for p in started)))
                waiting.pop(0)
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: {messages} messages not delivered in time")
            if any(p.poll() is not None for p in started):
                raise BenchError(f"{label}: a worker died; see {names[0]}.log")
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - clock
        cpu = sum(cpu_seconds(p.pid) for p in started) - cpu
        sink_cpu, pg_cpu = _cpu_or_zero(sink.pid) - sink_cpu, postgres_cpu() - pg_cpu
        peak = max(peak_rss_mib(p.pid) for p in started)
    finally:
        codes = [await asyncio.to_thread(group.stop, p) for p in started]
    if any(code != 0 for code in codes):
        raise BenchError(f"{label}: workers exited with {codes}")
    sent = await _scalar(database_url, "SELECT count(*) FROM email_messages WHERE status = 'sent'")
    attempts = await _scalar(database_url, "SELECT count(*) FROM delivery_attempts")
    if sent != messages or attempts != messages:
        raise BenchError(f"{label}: {messages} queued, {sent} sent, {attempts} attempts")
    return DeliveryRun(
        "postroom worker",
        workers,
        workers * CONNECTIONS_PER_WORKER,
        messages,
        seconds,
        cpu,
        sink_cpu,
        pg_cpu,
        peak,
        tuple(peaks),
    )


async def run_baseline(
    group: Processes, *, processes: int, messages: int, sink: Sink, label: str
) -> DeliveryRun:
    shares = [messages // processes + (i < messages % processes) for i in range(processes)]
    names = [f"{label}-baseline-{i}" for i in range(processes)]
    started = [
        group.start(
            name,
            [
                PYTHON,
                *("-m", "bench.smtp_baseline", "--port", str(sink.port)),
                *("--connections", str(CONNECTIONS_PER_WORKER), "--count", str(share)),
            ],
            stdin=-1,  # subprocess.PIPE: a line on it is the start signal
        )
        for name, share in zip(names, shares, strict=True)
    ]
    try:
        await wait_until(
            lambda: (
                all("READY" in group.log_of(n) for n in names)
                or any(p.poll() is not None for p in started)
            ),
            within=120,
            what="the baseline clients to build their messages",
        )
        sink_cpu, pg_cpu = _cpu_or_zero(sink.pid), postgres_cpu()
        for process in started:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.close()
        deadline = time.monotonic() + max(120.0, messages / 20)
        await wait_until(
            lambda: all(
                p.poll() is not None or "BENCH " in group.log_of(n)
                for p, n in zip(started, names, strict=True)
            ),
            within=deadline - time.monotonic(),
            what="the baseline clients to finish",
        )
        sink_cpu, pg_cpu = _cpu_or_zero(sink.pid) - sink_cpu, postgres_cpu() - pg_cpu
    finally:
        for process in started:
            await asyncio.to_thread(group.stop, process)
    results = []
    for name in names:
        line = next((x for x in group.log_of(name).splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise BenchError(f"{name} printed no result; see {name}.log")
        results.append(json.loads(line.removeprefix("BENCH ")))
    sent = sum(int(r["sent"]) for r in results)
    if sent != messages:
        raise BenchError(f"{label}: the baseline sent {sent} of {messages}")
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return DeliveryRun(
        "aiosmtplib baseline",
        processes,
        processes * CONNECTIONS_PER_WORKER,
        messages,
        seconds,
        sum(r["cpu"] for r in results),
        sink_cpu,
        pg_cpu,
        None,
    )


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0
