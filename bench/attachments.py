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
        self.attachments: list[tuple[str, int, str]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or b""
        mail = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        for part in mail.iter_attachments():  # type: ignore[attr-defined]
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
    return subprocess.Popen(
        [sys.executable, "-m", "postroom", *args],
        env=env,
        stdout=log.open("wb"),
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


async def main(mib: int) -> None:
    size = mib * MIB
    work = Path(tempfile.mkdtemp(prefix="postroom-bench-"))
    big = work / "big.bin"
    with big.open("wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(MIB))
    small = work / "small.bin"
    small.write_bytes(os.urandom(64 * 1024))

    sink = Sink()
    smtp_port, api_port = _free_port(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port, server_hostname="localhost")
    controller.start()
    env = {
        **os.environ,
        "POSTROOM_DATA_DIR": str(work / "data"),
        "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "POSTROOM_SENDERS__ALLOWED_DOMAINS": "example.com",
        "POSTROOM_FILES__MAX_FILE_BYTES": str(size + MIB),
        "POSTROOM_FILES__MAX_MESSAGE_BYTES": str(size + MIB),
        "POSTROOM_DELIVERY__POLL_SECONDS": "0.1",
        "POSTROOM_LOG_LEVEL": "WARNING",
    }
    _run("migrate", env=env)
    key = re.search(
        r"api key \(shown only now\): (\S+)", _run("organizations", "create", "bench", env=env)
    )
    assert key is not None
    api = _postroom("api", "--port", str(api_port), env=env, log=work / "api.log")
    worker = _postroom("worker", env=env, log=work / "worker.log")
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"REB-APIKEY": key.group(1)},
            timeout=120,
        ) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            await _upload_and_send(client, small)  # warm-up: imports, pools, connections

            base = {"api": _reset_peak(api.pid), "worker": _reset_peak(worker.pid)}
            upload_seconds, send_seconds = await _upload_and_send(client, big)
            peak = {"api": _status(api.pid)["VmHWM"], "worker": _status(worker.pid)["VmHWM"]}
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(timeout=30)
        controller.stop()

    expected = (big.name, size, hashlib.sha256(big.read_bytes()).hexdigest())
    arrived = "yes" if sink.attachments[-1] == expected else "NO"
    naive = _naive_peak(big, size)
    growth = {name: peak[name] - base[name] for name in base}
    print(
        f"attachment: {mib} MiB; upload (multipart) {upload_seconds:.1f} s, send over SMTP "
        f"{send_seconds:.1f} s (the sink parses it whole); arrived byte for byte: {arrived}\n"
    )
    print(f"{'process':<44} {'peak RSS growth':>16} {'x file size':>12}")
    for name, label in (("api", "API (upload, message)"), ("worker", "worker (MIME + SMTP DATA)")):
        print(f"{label:<44} {growth[name] / MIB:>12.1f} MiB {growth[name] / size:>12.2f}")
    print(
        f"{'baseline: build_mime + aiosmtplib data() copies':<44} "
        f"{naive / MIB:>12.1f} MiB {naive / size:>12.2f}   (tracemalloc, this process)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=20, help="attachment size in MiB")
    asyncio.run(main(parser.parse_args().mib))
