"""The SMTP server every message goes to: Postfix's `smtp-sink` (the fastest there is; Debian's
postfix package ships it, and it runs without Postfix itself), or else an aiosmtpd sink.

`python -m bench.sink PORT` runs the aiosmtpd sink until SIGTERM.
"""

import asyncio
import os
import shutil
import signal
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bench.infra import HOST, PYTHON, BenchError, Processes, free_port

SMTP_SINK_PATHS = ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink")


@dataclass(frozen=True)
class Sink:
    name: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"


def smtp_sink_path() -> str | None:
    found = shutil.which("smtp-sink")
    if found:
        return found
    return next((p for p in SMTP_SINK_PATHS if Path(p).exists()), None)


async def start_sink(group: Processes, *, prefer: str = "auto") -> Sink:
    """Starts the fastest sink available (or the one asked for: smtp-sink or aiosmtpd)."""
    port = free_port()
    binary = smtp_sink_path() if prefer in {"auto", "smtp-sink"} else None
    if prefer == "smtp-sink" and binary is None:
        raise BenchError("smtp-sink asked for but not installed (apt-get install postfix)")
    if binary is not None:
        # -m: connections at once (default 256); backlog 1024 so no SYN waits for a retry.
        args = [binary, "-m", "1024"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # required as root: it drops privileges after bind
        process = group.start("smtp-sink", [*args, f"{HOST}:{port}", "1024"])
        name = "smtp-sink (Postfix)"
    else:
        process = group.start("aiosmtpd-sink", [PYTHON, "-m", "bench.sink", str(port)])
        name = "aiosmtpd (Python)"
    await _wait_for_greeting(port, alive=lambda: process.poll() is None)
    return Sink(name, port, process.pid)


async def _wait_for_greeting(port: int, *, alive: object) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise BenchError("the SMTP sink exited while starting")
        with suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            greeting = await asyncio.wait_for(reader.readline(), 5)
            writer.write(b"QUIT\r\n")
            writer.close()
            if greeting.startswith(b"220"):
                return
        await asyncio.sleep(0.1)
    raise BenchError(f"no SMTP greeting on {HOST}:{port}")


def _serve_aiosmtpd(port: int) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Accept:
        async def handle_DATA(  # noqa: N802 - aiosmtpd calls it by this name
            self, server: SMTP, session: Session, envelope: Envelope
        ) -> str:
            return "250 2.0.0 Ok: queued"

    controller = Controller(Accept(), hostname=HOST, port=port)
    controller.start()
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + 3600  # bounded, whatever happens to the benchmark
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.2)
    controller.stop()


if __name__ == "__main__":
    _serve_aiosmtpd(int(sys.argv[1]))
