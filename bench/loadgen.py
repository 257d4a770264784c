"""HTTP load from a process of its own: `wrk` when it is installed (C, one thread, so it takes
as little as possible of the two cores from the server it measures), else this module's asyncio
client (`python -m bench.loadgen …`, keep-alive HTTP/1.1 over raw sockets, uvloop).

Both report requests, errors (a socket error or any status but the expected one), and latency
percentiles, plus the CPU time the client itself used, to say what it took from the server.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.infra import HOST, PYTHON, REPO, BenchError

_WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = os.getenv("BENCH_METHOD")
if #body > 0 then wrk.body = body end
for line in string.gmatch(os.getenv("BENCH_HEADERS"), "[^\\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"mean_us": %.1f, "socket_errors": %d, "status_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
"""
# No `response` hook: wrk would build a Lua table of every answer's headers. An error is what
# wrk counts itself: a socket error, a timeout, or a status of 400 or more.


@dataclass(frozen=True)
class LoadResult:
    client: str
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    client_cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_load(
    *,
    port: int,
    path: str,
    method: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    expect: int,
    client: str = "auto",
) -> LoadResult:
    """`connections` keep-alive connections sending as fast as answers come, for `seconds`."""
    use_wrk = client == "wrk" or (client == "auto" and wrk_path() is not None)
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        if use_wrk:
            return _run_wrk(port, path, method, body_file, headers, connections, seconds, expect)
        return _run_python(port, path, method, body_file, headers, connections, seconds, expect)


def _waited(args: list[str], env: dict[str, str], timeout: float) -> tuple[str, float]:
    """Runs a client, bounded in time; its output and the CPU seconds it used."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise BenchError(f"the load client ran past {timeout:.0f}s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"the load client failed ({process.returncode}): {output[-2000:]}")
    return output, usage.ru_utime + usage.ru_stime


def _run_wrk(
    port: int,
    path: str,
    method: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    expect: int,
) -> LoadResult:
    binary = wrk_path()
    if binary is None:
        raise BenchError("wrk asked for but not installed (apt-get install wrk)")
    script = body_file.with_name("bench.lua")
    script.write_text(_WRK_SCRIPT)
    env = {
        **os.environ,
        "BENCH_BODY_FILE": str(body_file),
        "BENCH_METHOD": method,
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items()),
    }
    args = [binary, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "30s"]
    args += ["-s", str(script), f"http://{HOST}:{port}{path}"]
    output, cpu = _waited(args, env, seconds + 60)
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise BenchError(f"wrk printed no result: {output[-2000:]}")
    found = json.loads(line.removeprefix("BENCH "))
    return LoadResult(
        client="wrk (1 thread)",
        connections=connections,
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["socket_errors"] + found["status_errors"],
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        client_cpu_seconds=cpu,
    )


def _run_python(
    port: int,
    path: str,
    method: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    expect: int,
) -> LoadResult:
    args = [PYTHON, "-m", "bench.loadgen", "--port", str(port), "--path", path]
    args += ["--method", method, "--body-file", str(body_file), "--connections", str(connections)]
    args += ["--seconds", str(seconds), "--expect", str(expect)]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    output, cpu = _waited(args, env, seconds + 60)
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise BenchError(f"the load client printed no result: {output[-2000:]}")
    found = json.loads(line.removeprefix("BENCH "))
    return LoadResult(
        client="python asyncio client (uvloop)",
        connections=connections,
        requests=found["requests"],
        seconds=found["seconds"],
        errors=found["errors"],
        p50_ms=found["p50_ms"],
        p99_ms=found["p99_ms"],
        client_cpu_seconds=cpu,
    )


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    if "content-length" not in fields:
        raise BenchError("the server answered without Content-Length")
    body = await reader.readexactly(int(fields["content-length"]))
    return int(status_line.split(" ")[1]), fields, body


async def _connection(
    port: int, request: bytes, expect: int, deadline: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    errors = 0
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status, _, _ = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != expect:
                errors += 1
    finally:
        writer.close()
    return errors


async def _load(args: argparse.Namespace, body: bytes) -> dict[str, object]:
    headers = dict(h.split(": ", 1) for h in args.header)
    request = request_bytes(args.method, args.path, headers, body)
    latencies: list[float] = []
    started = time.monotonic()
    deadline = started + args.seconds
    outcomes = await asyncio.gather(
        *(
            _connection(args.port, request, args.expect, deadline, latencies)
            for _ in range(args.connections)
        ),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    errors = sum(o if isinstance(o, int) else 1 for o in outcomes)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        **percentiles_ms(latencies),
    }


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    if len(latencies) < 2:
        value = latencies[0] * 1000 if latencies else 0.0
        return {"p50_ms": value, "p99_ms": value}
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--expect", type=int, default=200)
    args = parser.parse_args()
    body = Path(args.body_file).read_bytes()
    try:
        import uvloop

        result = uvloop.run(_load(args, body))
    except ImportError:
        result = asyncio.run(_load(args, body))
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
