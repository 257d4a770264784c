"""The top of a py-spy profile (`--format raw`: collapsed stacks, one `a;b;c count` a line).

`python -m bench.profiles FILE [N]` prints the N functions with the most samples, inclusive
(anywhere on the stack) and self (at the top of it)."""

import sys
from collections import Counter
from pathlib import Path

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
)


def top(path: Path, count: int = 15) -> str:
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
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples (on CPU)", "  inclusive:"]
    shown = [(f, n) for f, n in inclusive.most_common() if not f.startswith(_SPINE)][:count]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in shown]
    lines.append("  self:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(count)]
    return "\n".join(lines)


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (path/to/file.py)": one entry per function.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition(':')[0] or where.rstrip(')')})"


if __name__ == "__main__":
    print(top(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15))
