"""The whole benchmark: sets everything up on 127.0.0.1, runs the sections, and returns what it
measured as one JSON-ready dict (report.py turns it into the table)."""

import asyncio
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import attachments, delivery, ingest, listing, profiles, serve
from bench.infra import (
    PYTHON,
    REPO,
    BenchError,
    dsn,
    free_port,
    postroom_env,
    processes,
    py_spy,
    wait_for_http,
)
from bench.loadgen import wrk_path
from bench.sink import start_sink
from postroom.auth import service as auth

SECTIONS = ("ingest", "serve", "delivery", "listing", "memory")


@dataclass(frozen=True)
class Sizes:
    ingest_processes: tuple[int, ...] = (1, 2)
    ingest_connections: int = 50
    ingest_seconds: float = 10
    ingest_warmup: float = 2
    # POST /email-message-batches against the same API process, after the single POSTs.
    ingest_batch_sizes: tuple[int, ...] = (100, 500)
    ingest_batch_connections: int = 4
    delivery_workers: tuple[int, ...] = (1, 2, 4)
    delivery_messages: int = 20_000
    listing_rows: tuple[int, ...] = (10_000, 1_000_000)
    listing_requests: int = 200
    # One worker delivers the most; its peak RSS is read on the way at each smaller count.
    memory_messages: tuple[int, ...] = (10_000, 100_000)
    # bench/attachments.py: one file of this many MiB uploaded and sent as an attachment.
    attachment_mib: int = 20


FULL = Sizes()
# The CI smoke run: every section once, tiny, so the harness cannot rot; seconds long.
SMOKE = Sizes(
    ingest_processes=(1,),
    ingest_connections=8,
    ingest_seconds=1,
    ingest_warmup=0,
    ingest_batch_sizes=(10,),
    ingest_batch_connections=2,
    delivery_workers=(1,),
    delivery_messages=200,
    listing_rows=(200, 1_000),
    listing_requests=5,
    memory_messages=(),
    attachment_mib=1,
)


@dataclass
class Options:
    sizes: Sizes = FULL
    sections: tuple[str, ...] = SECTIONS
    load_client: str = "auto"  # wrk, python or auto (wrk when installed)
    sink: str = "auto"  # smtp-sink, aiosmtpd or auto (smtp-sink when installed)
    workdir: Path | None = None  # logs of every process; a temporary directory if None
    profile: bool = False  # py-spy on the servers and workers, into <workdir>/../profiles
    worker_env: dict[str, str] = field(default_factory=dict)  # e.g. POSTROOM_DELIVERY__…
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "commit": commit or None,
        "load_average_at_start": os.getloadavg(),
    }


async def organization(database_url: str, name: str) -> auth.NewOrganization:
    from postroom.db.engine import create_engine, create_sessionmaker

    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await auth.create_organization(session, name, datetime.now(UTC))
    finally:
        await engine.dispose()


async def _postgres_version(database_url: str) -> str:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def run(options: Options) -> dict[str, Any]:
    from bench.infra import fresh_database

    began = time.monotonic()

    def log(line: str) -> None:
        options.log(f"[{time.monotonic() - began:6.1f}s] {line}")

    sizes = options.sizes
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": asdict(sizes),
    }
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        logs = options.workdir or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        report["logs"] = str(logs) if options.workdir else None
        data_dir = logs / "data"
        profile_dir = None
        if options.profile:
            profile_dir = (logs.parent if options.workdir else Path(tmp)) / "profiles"
            if py_spy() is None:
                log("--profile: no py-spy on PATH, in $PY_SPY or beside this Python; no profiles")
        async with fresh_database() as database_url, processes(logs, profile_dir) as group:
            report["machine"]["postgresql"] = await _postgres_version(database_url)
            org = await organization(database_url, "bench")
            client = options.load_client
            if client == "auto":
                client = "wrk" if wrk_path() else "python"

            if "ingest" in options.sections:
                runs = []
                for count in sizes.ingest_processes:
                    for server in ("baseline", "durable", "postroom"):
                        log(f"ingest: {server}, {count} process(es), {sizes.ingest_seconds:.0f}s")
                        result = await ingest.measure(
                            group,
                            server=server,
                            processes=count,
                            database_url=database_url,
                            data_dir=data_dir,
                            api_key=org.api_key,
                            organization_id=org.organization_id,
                            connections=sizes.ingest_connections,
                            seconds=sizes.ingest_seconds,
                            warmup=sizes.ingest_warmup,
                            client=client,
                            batch_sizes=sizes.ingest_batch_sizes,
                            batch_connections=sizes.ingest_batch_connections,
                        )
                        log(f"  {result.load.per_second:.0f} requests/s")
                        for batch in result.batches:
                            log(
                                f"  batches of {batch.size}: "
                                f"{batch.messages_per_second:.0f} messages/s"
                            )
                        runs.append(result.as_dict())
                report["ingest"] = {"client": runs[0]["client"] if runs else None, "runs": runs}

            if "serve" in options.sections:
                report["serve"] = await _serve(
                    group, report, database_url, data_dir, org, sizes, client, log
                )

            needs_sink = "delivery" in options.sections or "memory" in options.sections
            if needs_sink:
                sink = await start_sink(group, prefer=options.sink)
                report["sink"] = sink.name
                log(f"SMTP sink: {sink.name}")

            if "delivery" in options.sections:
                runs = []
                for count in sizes.delivery_workers:
                    label = f"delivery-{count}"
                    log(f"delivery: baseline, {count} process(es), {sizes.delivery_messages}")
                    base = await delivery.run_baseline(
                        group,
                        processes=count,
                        messages=sizes.delivery_messages,
                        sink=sink,
                        label=label,
                    )
                    log(f"  {base.per_second:.0f} messages/s")
                    log(f"delivery: {count} worker(s), {sizes.delivery_messages} messages")
                    work = await delivery.run_workers(
                        group,
                        workers=count,
                        messages=sizes.delivery_messages,
                        database_url=database_url,
                        organization_id=org.organization_id,
                        data_dir=data_dir,
                        sink=sink,
                        label=label,
                        extra_env=options.worker_env,
                    )
                    log(f"  {work.per_second:.0f} messages/s")
                    runs += [base.as_dict(), work.as_dict()]
                report["delivery"] = {"runs": runs}

            if "memory" in options.sections and sizes.memory_messages:
                most = max(sizes.memory_messages)
                log(f"memory: 1 worker, {most} messages, peak RSS read at {sizes.memory_messages}")
                work = await delivery.run_workers(
                    group,
                    workers=1,
                    messages=most,
                    database_url=database_url,
                    organization_id=org.organization_id,
                    data_dir=data_dir,
                    sink=sink,
                    label=f"memory-{most}",
                    extra_env=options.worker_env,
                    checkpoints=tuple(n for n in sizes.memory_messages if n < most),
                )
                peaks = [*work.peaks_on_the_way, (most, work.peak_rss_mib or 0.0)]
                log(f"  peak RSS {peaks}, {work.per_second:.0f}/s")
                report["memory"] = {
                    "run": work.as_dict(),
                    "runs": [{"messages": n, "peak_rss_mib": round(mib, 1)} for n, mib in peaks],
                }

            if "memory" in options.sections and sizes.attachment_mib:
                log(f"memory: a {sizes.attachment_mib} MiB attachment, uploaded and sent")
                with tempfile.TemporaryDirectory(prefix="postroom-bench-attachment-") as scratch:
                    found = await attachments.measure(sizes.attachment_mib, Path(scratch), logs)
                if not found["arrived_byte_for_byte"]:
                    raise BenchError("the attachment did not arrive byte for byte")
                growth = [round(p["x_file_size"], 2) for p in found["processes"]]
                log(f"  peak RSS growth x file size (API, worker): {growth}")
                report["attachment"] = found

            if "listing" in options.sections:
                await delivery.reset(database_url)
                report["listing"] = await _listing(group, database_url, data_dir, sizes, log)
            log("stopping every process")
        log("database dropped")
        if profile_dir is not None:
            # Written by py-spy as each process ended; summarized while the folder exists.
            report["profiles"] = profiles.by_section(profile_dir) if profile_dir.is_dir() else {}
        report["seconds"] = round(time.monotonic() - began, 1)
        report["machine"]["load_average_at_end"] = os.getloadavg()
    return report


async def _serve(
    group: Any,
    report: dict[str, Any],
    database_url: str,
    data_dir: Path,
    org: auth.NewOrganization,
    sizes: Sizes,
    client: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """`postroom serve` on SQLite under the ingest load, and the trivial endpoint (one
    process) it is compared with: the ingest section's, or measured here if it did not run."""
    trivial = None
    if not any(
        r["server"] == "baseline" and r["processes"] == 1
        for r in report.get("ingest", {}).get("runs", [])
    ):
        log(f"serve: the trivial endpoint, 1 process, {sizes.ingest_seconds:.0f}s")
        base = await ingest.measure(
            group,
            server="baseline",
            processes=1,
            database_url=database_url,
            data_dir=data_dir,
            api_key=org.api_key,
            organization_id=org.organization_id,
            connections=sizes.ingest_connections,
            seconds=sizes.ingest_seconds,
            warmup=sizes.ingest_warmup,
            client=client,
        )
        log(f"  {base.load.per_second:.0f} requests/s")
        trivial = base.as_dict()
    log(f"serve: postroom serve on SQLite, embedded worker, {sizes.ingest_seconds:.0f}s")
    result = await serve.measure(
        group,
        connections=sizes.ingest_connections,
        seconds=sizes.ingest_seconds,
        warmup=sizes.ingest_warmup,
        client=client,
    )
    log(f"  {result.load.per_second:.0f} requests/s, {result.delivered} delivered (.eml) meanwhile")
    return {"client": result.load.client, "run": result.as_dict(), "trivial": trivial}


async def _listing(
    group: Any, database_url: str, data_dir: Path, sizes: Sizes, log: Callable[[str], None]
) -> dict[str, Any]:
    org = await organization(database_url, "listing")
    port = free_port()
    server = group.start(
        "listing-api",
        [PYTHON, "-m", "postroom", "api", "--port", str(port)],
        postroom_env(database_url, data_dir),
    )
    timings = []
    fills = []
    plans: dict[str, dict[str, list[str]]] = {}
    try:
        await wait_for_http(port, "/healthz", within=60, alive=lambda: server.poll() is None)
        group.profile(server, "listing-api")
        loaded = 0
        for rows in sizes.listing_rows:
            log(f"listing: loading rows {loaded + 1}..{rows}")
            seconds = await listing.fill(database_url, org.organization_id, loaded + 1, rows)
            fills.append({"rows": rows, "seconds": round(seconds, 1)})
            loaded = rows
            for query in listing.queries(listing.newest(rows)):
                timing = await listing.time_query(
                    port, org.api_key, query, rows, sizes.listing_requests
                )
                log(f"  {rows} rows, {query.name}: p50 {timing.p50_ms:.1f} ms")
                timings.append(timing.as_dict())
                if rows == max(sizes.listing_rows):
                    plans[query.name] = await listing.explain(
                        database_url, org.organization_id, query
                    )
    finally:
        await asyncio.to_thread(group.stop, server)
    if server.returncode not in (0, -15):
        raise BenchError(f"the listing API exited with {server.returncode}")
    return {"fills": fills, "timings": timings, "plans_at_most_rows": plans}
