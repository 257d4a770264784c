"""One hot path's CPU, measured inside this process (no uvicorn, no load client, nothing else
on the measured side), for telling whether a change helped. On a shared 2-core machine one
full `python -m bench` moves by 15% or more from run to run (bench/RESULTS.md), and this by
less, but not by nothing: run the old and the new code one after the other, several times,
alternating, and compare the lowest figures.

    python -m bench.inprocess post   # POST /email-messages through the ASGI app
    python -m bench.inprocess smtp   # SmtpTransport.send of the bench's receipt
    python -m bench.inprocess deliver  # a delivery worker emptying a queued outbox

`post`: postroom's app as `postroom api` makes it, on a fresh migrated PostgreSQL database,
`--concurrency` callers at once; CPU ms a request of this process (the app and its group
commit; not PostgreSQL's, not HTTP parsing). `smtp`: the bench's receipt, its MIME built per
message, sent over 4 connections to the bench's SMTP sink (smtp-sink if installed, else
aiosmtpd, in a process of its own); CPU µs a message. `deliver`: `run_worker` as `postroom
worker` runs it (its log lines to a file), on a fresh migrated PostgreSQL database, emptying an
outbox of `--count` receipts COPYed in before each round, into the same sink; CPU µs a message
of this process, and PostgreSQL's beside it. Another checkout's code:
`PYTHONPATH=<checkout>/src python -m bench.inprocess …`.
"""

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from starlette.types import Message

from bench import payload
from bench.delivery import copy_outbox, reset
from bench.infra import BenchError, dsn, fresh_database, postgres_cpu, postroom_env, processes
from bench.run import organization as new_organization
from bench.sink import start_sink
from postroom.app import create_app
from postroom.auth.service import NewOrganization
from postroom.core import event_loop
from postroom.core.collector import settle_after_startup
from postroom.core.ids import new_id
from postroom.core.logging import configure_logging
from postroom.delivery.transports.smtp import SmtpConfig, SmtpLimits, SmtpTransport
from postroom.delivery.worker import run_worker
from postroom.settings import Settings, load_settings


async def _rounds(
    label: str,
    unit: str,
    scale: float,
    count: int,
    rounds: int,
    go: Callable[[], Awaitable[None]],
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """`go` once to warm up, then `rounds` times measured: CPU per item, in `unit`. `prepare`,
    unmeasured, before each `go`."""
    if prepare is not None:
        await prepare()
    await go()
    figures = []
    for _ in range(rounds):
        if prepare is not None:
            await prepare()
        cpu, wall = time.process_time(), time.perf_counter()
        await go()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        figures.append(cpu * scale / count)
        print(f"{label}: {figures[-1]:.3f} {unit} CPU, {count / wall:.0f}/s", flush=True)
    return figures


async def post(
    requests: int, concurrency: int, rounds: int, *, as_served: bool = False
) -> list[float]:
    """`as_served`: the process set up as `postroom api` sets itself up (its JSON log lines on
    stderr, its GC settled after startup); a test leaves its own process alone."""
    async with fresh_database() as database_url:
        organization = await new_organization(database_url, "inprocess")
        with tempfile.TemporaryDirectory(prefix="postroom-inprocess-") as data_dir:
            settings = _settings(postroom_env(database_url, Path(data_dir)))
            if as_served:
                configure_logging(settings.log_level, json_lines=settings.log_json)
            app = create_app(settings)
            if as_served:
                settle_after_startup()
            body = payload.request_body()
            headers = [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"reb-apikey", organization.api_key.encode()),
            ]
            statuses: Counter[int] = Counter()

            async def one() -> None:
                scope: dict[str, Any] = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "POST",
                    "scheme": "http",
                    "path": "/email-messages",
                    "raw_path": b"/email-messages",
                    "root_path": "",
                    "query_string": b"",
                    "headers": headers,
                    "client": ("127.0.0.1", 1),
                    "server": ("127.0.0.1", 80),
                    "state": {},
                }
                received = False

                async def receive() -> Message:
                    nonlocal received
                    if received:  # only a disconnect is left to wait for
                        await asyncio.Event().wait()
                    received = True
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        statuses[message["status"]] += 1

                await app(scope, receive, send)

            async def caller(count: int) -> None:
                for _ in range(count):
                    await one()

            each, left = divmod(requests, concurrency)
            shares = [each + (i < left) for i in range(concurrency)]

            async def go() -> None:
                await asyncio.gather(*(caller(share) for share in shares))

            async with app.router.lifespan_context(app):
                figures = await _rounds("post", "ms a request", 1e3, requests, rounds, go)
            if set(statuses) != {201}:
                raise BenchError(f"POST /email-messages answered {dict(statuses)}")
            return figures


def _settings(environment: dict[str, str]) -> Settings:
    """The settings `postroom api` would read from `environment`; this process's own
    environment is left as it was."""
    kept = os.environ.copy()
    os.environ.update(environment)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(kept)


async def smtp(messages: int, rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="postroom-inprocess-") as logs:
        async with processes(Path(logs)) as group:
            sink = await start_sink(group)
            transport = SmtpTransport(
                SmtpConfig(host="127.0.0.1", port=sink.port), SmtpLimits(connections=4)
            )
            outgoing = [payload.outgoing(new_id("mail_msg_"), n) for n in range(messages)]

            async def go() -> None:
                await asyncio.gather(*(transport.send(m) for m in outgoing))

            try:
                return await _rounds(
                    f"smtp ({sink.name})", "µs a message", 1e6, messages, rounds, go
                )
            finally:
                await transport.aclose()


async def deliver(messages: int, rounds: int, *, as_served: bool = False) -> list[float]:
    """`as_served`: the process set up as `postroom worker` sets itself up (its JSON log lines,
    here to a file, and its GC settled after startup); a test leaves its own process alone."""
    async with fresh_database() as database_url:
        organization = await new_organization(database_url, "inprocess")
        with tempfile.TemporaryDirectory(prefix="postroom-inprocess-") as scratch:
            async with processes(Path(scratch)) as group:
                sink = await start_sink(group)
                settings = _settings(
                    postroom_env(
                        database_url,
                        Path(scratch),
                        POSTROOM_SMTP_URL=sink.url,
                        POSTROOM_DELIVERY__POLL_SECONDS="0.05",
                    )
                )
                with _logs_to(Path(scratch) / "worker.log", settings, enabled=as_served):
                    return await _deliver_rounds(
                        settings, database_url, organization, sink.name, messages, rounds
                    )


@contextmanager
def _logs_to(path: Path, settings: Settings, *, enabled: bool) -> Iterator[None]:
    """This process's stderr (fd 2) into `path` and its logging as `postroom worker` sets it up,
    its GC settled, until the block ends (stderr given back); nothing if not `enabled`."""
    if not enabled:
        yield
        return
    with path.open("w") as log:
        kept_stderr = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            configure_logging(settings.log_level, json_lines=settings.log_json)
            settle_after_startup()
            yield
        finally:
            os.dup2(kept_stderr, 2)
            os.close(kept_stderr)


async def _deliver_rounds(
    settings: Settings,
    database_url: str,
    organization: NewOrganization,
    sink_name: str,
    messages: int,
    rounds: int,
) -> list[float]:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    database = await asyncpg.connect(dsn(database_url))
    pg_cpu: list[float] = []
    rows: list[tuple[Any, ...]] = []

    async def prepare() -> None:
        await reset(database_url)
        now = datetime.now(UTC)
        rows[:] = payload.outbox_rows(organization.organization_id, messages, now)

    async def go() -> None:
        # The COPY's commit makes the messages due: the worker starts on them at once.
        await copy_outbox(database_url, organization.organization_id, messages, rows)
        before = postgres_cpu()
        while await database.fetchval("SELECT count(*) FROM delivery_queue"):
            if worker.done():
                raise BenchError("the worker stopped; see its log")
            await asyncio.sleep(0.05)
        pg_cpu.append((postgres_cpu() - before) * 1e6 / messages)

    try:
        figures = await _rounds(
            f"deliver ({sink_name})", "µs a message", 1e6, messages, rounds, go, prepare
        )
    finally:
        stop.set()
        await worker
        await database.close()
    print("PostgreSQL µs a message: " + " ".join(f"{f:.0f}" for f in pg_cpu[1:]), flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("path", choices=["post", "smtp", "deliver"])
    parser.add_argument("--count", type=int, help="requests or messages a round")
    parser.add_argument("--concurrency", type=int, default=50, help="post: callers at once")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.path == "post":
        figures = event_loop.run(
            post(args.count or 3000, args.concurrency, args.rounds, as_served=True)
        )
    elif args.path == "smtp":
        figures = event_loop.run(smtp(args.count or 4000, args.rounds))
    else:
        figures = event_loop.run(deliver(args.count or 10_000, args.rounds, as_served=True))
    print(f"lowest: {min(figures):.3f}", flush=True)


if __name__ == "__main__":
    main()
