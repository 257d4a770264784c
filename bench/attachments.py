"""Memory of a large attachment: upload it, send it over SMTP, and report the peak RSS growth of
the API process and of the worker process as ratios to the file's size.

    python bench/attachments.py [--mib 20]

Starts its own `postroom api` and `postroom worker` processes on a fresh SQLite database in a
temporary folder, and an SMTP sink (aiosmtpd) in this process, all on 127.0.0.1. Peak RSS is
read from /proc (Linux): each process's high-water mark is reset after a warm-up round (a small
file uploaded and sent, so imports and connections are in place), then the large file is
uploaded (multipart) and sent, and the new high-water mark less the RSS at the reset is the
growth. The sink checks that the attachment arrived byte for byte.

The baseline, measured in this process in the same run with tracemalloc, is the standard
library used naively: the whole message built with `email` (build_mime) and handed to
aiosmtplib's `data()`, which normalises line endings and dot-stuffs it in further copies.
"""

import argparse
import asyncio
import email
import email.policy
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from postroom.delivery.mime import AttachmentFile, OutgoingMessage, build_mime

MIB = 1024 * 1024


class Sink:
    """An SMTP server that parses what it gets and keeps the SHA-256 of each attachment."""

    def __init__(self) -> None:
        self.attachments: list[tuple[str | None, int, str]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or b""
        mail = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        for part in mail.iter_attachments():
            content = part.get_content()
            self.attachments.append(
                (part.get_filename(), len(content), hashlib.sha256(content).hexdigest())
            )
        self.arrived.set()
        return "250 2.0.0 OK"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> int:
    """Resets the process's RSS high-water mark to its current RSS; returns that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid)["VmRSS"]


def _postroom(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:  # the child writes to its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "postroom", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "postroom", *args], env=env, capture_output=True, check=True
    )
    return done.stdout.decode()


async def _wait_sent(client: httpx.AsyncClient, message_id: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = (await client.get(f"/email-messages/{message_id}")).json()
        if status["status"] == "sent":
            return
        if status["status"] == "failed":
            raise RuntimeError(f"message failed: {status['responseBody']}")
        await asyncio.sleep(0.1)
    raise TimeoutError("the message was not sent in time")


async def _upload_and_send(client: httpx.AsyncClient, path: Path) -> tuple[float, float]:
    """Seconds to upload, and then to send (as the client sees it: until the API says sent)."""
    started = time.monotonic()
    with path.open("rb") as handle:
        response = await client.post("/files", files={"file": (path.name, handle)})
    response.raise_for_status()
    file_id = response.json()["id"]
    uploaded = time.monotonic()
    created = await client.post(
        "/email-messages",
        json={
            "from": "bench@example.com",
            "to": ["sink@example.com"],
            "subject": f"bench {path.name}",
            "text": "attached",
            "html": "<p>attached</p>",
            "status": "outbox",
            "attachments": [{"resourceType": "file", "resourceId": file_id}],
        },
    )
    created.raise_for_status()
    await _wait_sent(client, created.json()["id"])
    return uploaded - started, time.monotonic() - uploaded


def _naive_peak(path: Path, size: int) -> int:
    """Peak Python allocations of the whole-message path: build_mime, then what aiosmtplib's
    data() does to the bytes before writing them (line endings, dot-stuffing, end mark)."""
    message = OutgoingMessage(
        id="mail_msg_bench",
        sender="bench@example.com",
        to=("sink@example.com",),
        cc=(),
        bcc=(),
        subject="bench",
        text="attached",
        html="<p>attached</p>",
        date=datetime.now(UTC),
        attachments=(AttachmentFile(path.name, "application/octet-stream", size, path),),
    )
    tracemalloc.start()
    data = build_mime(message)
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del data
    return peak


def _make_files(work: Path, mib: int) -> tuple[Path, Path]:
    """A random file of `mib` MiB, and a small one for the warm-up round."""
    work.mkdir(parents=True, exist_ok=True)
    big = work / "big.bin"
    with big.open("wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(MIB))
    small = work / "small.bin"
    small.write_bytes(os.urandom(64 * 1024))
    return big, small


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def measure(
    mib: int, work: Path, logs: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The figures of one run in `work` (a folder of its own: the data directory and the files
    go there, and the processes' logs unless `logs` is given): the peak RSS growth of each
    process, in bytes and as a ratio to the file's size, beside the whole-message baseline's.
    `env`: more settings for both processes (e.g. an object store for the files)."""
    logs = logs or work
    size = mib * MIB
    big, small = await asyncio.to_thread(_make_files, work, mib)

    sink = Sink()
    smtp_port, api_port = _free_port(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port, server_hostname="localhost")
    controller.start()
    # No POSTROOM_* setting of the caller's: a database URL would take it off its own SQLite.
    settings = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        {
            "POSTROOM_DATA_DIR": str(work / "data"),
            "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "POSTROOM_SENDERS__ALLOWED_DOMAINS": "example.com",
            "POSTROOM_FILES__MAX_FILE_BYTES": str(size + MIB),
            "POSTROOM_FILES__MAX_MESSAGE_BYTES": str(size + MIB),
            "POSTROOM_DELIVERY__POLL_SECONDS": "0.1",
            "POSTROOM_LOG_LEVEL": "WARNING",
            **settings,
        }
    )
    api = worker = None
    try:
        await asyncio.to_thread(_run, "migrate", env=env)
        created = await asyncio.to_thread(_run, "organizations", "create", "bench", env=env)
        key = re.search(r"api key \(shown only now\): (\S+)", created)
        assert key is not None
        api = _postroom("api", "--port", str(api_port), env=env, log=logs / "attachment-api.log")
        worker = _postroom("worker", env=env, log=logs / "attachment-worker.log")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"REB-APIKEY": key.group(1)},
            timeout=120,
        ) as client:
            for _ in range(600):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if api.poll() is not None:
                    raise RuntimeError(f"postroom api exited; see {logs / 'attachment-api.log'}")
                await asyncio.sleep(0.1)
            await _upload_and_send(client, small)  # warm-up: imports, pools, connections

            base = {"api": _reset_peak(api.pid), "worker": _reset_peak(worker.pid)}
            upload_seconds, send_seconds = await _upload_and_send(client, big)
            peak = {"api": _status(api.pid)["VmHWM"], "worker": _status(worker.pid)["VmHWM"]}
    finally:
        for process in (api, worker):
            if process is not None:
                process.terminate()
                await asyncio.to_thread(process.wait, 30)
        controller.stop()

    expected = (big.name, size, await asyncio.to_thread(_sha256, big))
    naive = await asyncio.to_thread(_naive_peak, big, size)
    growth = {name: peak[name] - base[name] for name in base}
    await asyncio.to_thread(big.unlink)
    return {
        "mib": mib,
        "file_bytes": size,
        "upload_seconds": round(upload_seconds, 2),
        "send_seconds": round(send_seconds, 2),
        "arrived_byte_for_byte": bool(sink.attachments) and sink.attachments[-1] == expected,
        "processes": [
            {
                "process": name,
                "label": label,
                "peak_rss_growth_bytes": growth[name],
                "x_file_size": round(growth[name] / size, 3),
            }
            for name, label in (
                ("api", "API (upload, message)"),
                ("worker", "worker (MIME + SMTP DATA)"),
            )
        ],
        "baseline_peak_bytes": naive,
        "baseline_x_file_size": round(naive / size, 3),
    }


async def main(mib: int) -> None:
    result = await measure(mib, Path(tempfile.mkdtemp(prefix="postroom-bench-")))
    print(
        f"attachment: {mib} MiB; upload (multipart) {result['upload_seconds']:.1f} s, send over "
        f"SMTP {result['send_seconds']:.1f} s (the sink parses it whole); arrived byte for "
        f"byte: {'yes' if result['arrived_byte_for_byte'] else 'NO'}\n"
    )
    print(f"{'process':<44} {'peak RSS growth':>16} {'x file size':>12}")
    for row in result["processes"]:
        growth = row["peak_rss_growth_bytes"]
        print(f"{row['label']:<44} {growth / MIB:>12.1f} MiB {row['x_file_size']:>12.2f}")
    naive = result["baseline_peak_bytes"]
    print(
        f"{'baseline: build_mime + aiosmtplib data() copies':<44} "
        f"{naive / MIB:>12.1f} MiB {result['baseline_x_file_size']:>12.2f}   "
        "(tracemalloc, this process)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=20, help="attachment size in MiB")
    asyncio.run(main(parser.parse_args().mib))
