#!/usr/bin/env python3
"""The two commands of the README, with nothing but Python 3.11+ installed.

    python3 dev.py serve    start postroom on SQLite with an embedded worker
    python3 dev.py test     lint, type-check, then the suite on SQLite and on PostgreSQL
    python3 dev.py bench    the benchmarks (bench/RESULTS.md); `--smoke` for the short run

Each creates ./.venv on first use and reinstalls it whenever pyproject.toml or
requirements.lock change. Extra arguments after `test` go to pytest, after `bench` to the
benchmark.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".postroom-install"


def ensure_environment() -> None:
    """Create the virtualenv and install the pinned dependencies, once per lock change."""
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "requirements.lock").read_bytes()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv (the first run takes a minute or two)", flush=True)
        venv.create(VENV, with_pip=True)
    pinned = (ROOT / "requirements.lock").read_text().count("==")
    print(f"dev.py: installing {pinned} pinned packages into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "install"]
    command = [*pip, "--progress-bar", "off", "-c", "requirements.lock", "-e", ".[dev]"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    seen, said = 0, deque[str](maxlen=40)
    live = sys.stdout.isatty()
    for line in process.stdout:
        said.append(line)
        if line.startswith(("Collecting ", "Requirement already satisfied", "Obtaining ")):
            seen += 1
            if live:
                print(f"\rdev.py: {seen} resolved", end="", flush=True)
        elif line.startswith("Installing collected packages"):
            names = line.split(":", 1)[1].count(",") + 1
            print(f"{chr(10) if live else ''}dev.py: installing {names} packages", flush=True)
    if process.wait() != 0:
        print("\n" + "".join(said), flush=True)
        raise SystemExit(f"dev.py: pip failed (exit {process.returncode})")
    print("dev.py: .venv is ready", flush=True)
    STAMP.write_text(digest)


SDK_TESTS = ROOT / "tests" / "sdk"


def ensure_sdk() -> None:
    """Rebilly's JavaScript SDK for tests/sdk: node from Debian's packages when it is missing,
    then `npm ci` whenever package-lock.json is newer than what is installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            print("dev.py: node and npm are missing (tests/sdk will fail); install nodejs and npm")
            return
        print("dev.py: installing node and npm (Debian packages) for tests/sdk", flush=True)
        apt = ["apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["update"], ["install", "-y", "nodejs", "npm"]):
            subprocess.run([*apt, *step], check=True, stdout=subprocess.DEVNULL, env=env)
    lock = SDK_TESTS / "package-lock.json"
    installed = SDK_TESTS / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    print("dev.py: installing the SDK for tests/sdk (npm ci)", flush=True)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SDK_TESTS, check=True
    )


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> None:
    """Debian's Chromium for tests/dashboard (Playwright drives it; it downloads no browser)."""
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("dev.py: /usr/bin/chromium is missing (tests/dashboard will fail); install chromium")
        return
    print("dev.py: installing chromium (Debian package) for tests/dashboard", flush=True)
    apt = ["apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["update"], ["install", "-y", "chromium"]):
        subprocess.run([*apt, *step], check=True, stdout=subprocess.DEVNULL, env=env)


def run(*args: str, env: dict[str, str] | None = None) -> int:
    print(f"\n$ {' '.join(args)}", flush=True)
    return subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}).returncode


def tool(name: str) -> str:
    return str(BIN / name)


def test(pytest_args: list[str]) -> int:
    ensure_sdk()
    ensure_chromium()
    checks = [
        (tool("ruff"), "check", "."),
        (tool("ruff"), "format", "--check", "."),
        (tool("mypy"),),
        (tool("lint-imports"),),
    ]
    failed = [" ".join(c[:2]) for c in checks if run(*c) != 0]
    databases = os.environ.get("POSTROOM_TEST_DATABASES", "sqlite,postgresql").split(",")
    for database in databases:
        # The slowest tests are listed with each run: what to look at first when it gets long.
        code = run(
            tool("pytest"), "--durations=30", *pytest_args, env={"POSTROOM_TEST_DATABASE": database}
        )
        if code != 0:
            failed.append(f"pytest on {database}")
    if failed:
        print(f"\ndev.py test: FAILED: {', '.join(failed)}", flush=True)
        return 1
    print(f"\ndev.py test: all checks passed on {', '.join(databases)}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "bench", "setup"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        os.execv(BIN / "postroom", [str(BIN / "postroom"), "serve", *rest])
    if command == "test":
        return test(rest)
    if command == "bench":
        return run(tool("python"), "-m", "bench", *rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
