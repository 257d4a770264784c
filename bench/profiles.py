"""The top of a py-spy profile (`--format raw`: collapsed stacks, one `a;b;c count` a line).

`python -m bench.profiles FILE [N]` prints the N functions with the most samples, inclusive
(anywhere on the stack) and self (at the top of it)."""

import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Frames every sample of a process passes through (interpreter start, CLI, event loop): they
# say nothing about where the time goes, so the inclusive list leaves them out.
_SPINE = (
    "process ",
    "<module> ",
    "_run_",
    "Runner.",
    "run (asyncio/",
    "run (uvicorn/",
    "BaseEventLoop.",
    "Handle._run",
    "main (",
    "invoke (",
    "Context.",
    "Command.",
    "TyperGroup.",
    "Typer.",
    "get_callback",
    "_main (",
    "wrapper (typer",
    "worker (postroom/cli.py)",
    "Server.",
    "Multiprocess.",
    "BaseProcess.",
    "Popen.",
    "spawn_main",
    "subprocess_started",
    "uvloop.",
    "asyncio_run (uvicorn/",
    "serve (postroom/cli.py)",
    "api (postroom/cli.py)",
    "Thread._bootstrap",
)
# Layers every HTTP request passes through (uvicorn, Starlette, FastAPI, postroom's
# middlewares): each has about the share of all request handling, which
# `RequestResponseCycle.run_asgi` (kept) already gives; what they do themselves is in `self`.
_WRAPPERS = (
    "ProxyHeadersMiddleware.",
    "FastAPI.__call__",
    "Starlette.__call__",
    "ServerErrorMiddleware.",
    "ExceptionMiddleware.",
    "ExceptionTelemetryMiddleware.",
    "AppBodyLimitMiddleware.",
    "AsyncExitStackMiddleware.",
    "wrap_app_handling_exceptions.",
    "Router.__call__",
    "APIRouter.",
    "_IncludedRouter.",
    "APIRoute.handle",
    "Route.handle",
    "request_response.<locals>",
    "get_request_handler.<locals>",
    "run_endpoint_function",
    "BodySizeLimitMiddleware.",
    "RequestLogMiddleware.",
    "TransactionMiddleware.",
)


def summarize(path: Path, count: int = 15) -> dict[str, Any]:
    """The samples of one profile, and its `count` functions with the most of them, inclusive
    (framework spine left out) and self, each as [percent of the samples, function]."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    left_out = _SPINE + _WRAPPERS
    shown = [(f, n) for f, n in inclusive.most_common() if not f.startswith(left_out)][:count]
    return {
        "profile": path.stem,
        "samples": total,
        "inclusive": [[round(100 * n / total, 1), f] for f, n in shown] if total else [],
        "self": [[round(100 * n / total, 1), f] for f, n in own.most_common(count)]
        if total
        else [],
    }


def text(summary: dict[str, Any]) -> str:
    """A summary as `python -m bench.profiles` prints it."""
    if not summary["samples"]:
        return f"{summary['profile']}: no samples"
    lines = [f"{summary['profile']}: {summary['samples']} samples (on CPU)", "  inclusive:"]
    lines += [f"    {share:5.1f}%  {f}" for share, f in summary["inclusive"]]
    lines.append("  self:")
    lines += [f"    {share:5.1f}%  {f}" for share, f in summary["self"]]
    return "\n".join(lines)


def top(path: Path, count: int = 15) -> str:
    return text(summarize(path, count))


def by_section(folder: Path, count: int = 15) -> dict[str, list[dict[str, Any]]]:
    """Every profile in `folder` (`<name>.txt`, as bench.infra.Processes writes them),
    summarized, under the section its name starts with (`ingest-postroom-1`: ingest)."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.txt")):
        section = path.stem.split("-", 1)[0]
        sections.setdefault(section, []).append(summarize(path, count))
    return sections


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (path/to/file.py)": one entry per function.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition(':')[0] or where.rstrip(')')})"


if __name__ == "__main__":
    print(top(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15))
