"""core/metrics_dir.py with real processes writing into a shared directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from postroom.core import metrics_dir

TIMEOUT = 60  # seconds: a Python process importing postroom on a busy machine
# Counts one request, says so, then waits for its stdin to close.
WRITER = """
import sys
from postroom.core.metrics import REQUESTS
REQUESTS.labels("GET", "/healthz", "200").inc()
print("counted", flush=True)
sys.stdin.read()
"""


def _environment(directory: Path) -> dict[str, str]:
    return {**os.environ, metrics_dir.VARIABLE: str(directory)}


def _pids(directory: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("*.db")}


class TestSharedDirectory:
    def test_a_missing_directory_is_created_by_the_first_process(self, tmp_path: Path) -> None:
        directory = tmp_path / "not" / "yet" / "metrics"
        done = subprocess.run(
            [sys.executable, "-c", WRITER],
            env=_environment(directory),
            input="",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "counted\n"
        assert (directory / f"counter_{_pids(directory).pop()}.db").exists()

    def test_prepare_removes_what_ended_processes_left_and_keeps_the_running(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        directory = tmp_path / "metrics"
        ended = subprocess.run(
            [sys.executable, "-c", WRITER],
            env=_environment(directory),
            input="",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert ended.returncode == 0, ended.stderr
        with subprocess.Popen(
            [sys.executable, "-c", WRITER],
            env=_environment(directory),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as running:
            assert running.stdout is not None and running.stdin is not None
            assert running.stdout.readline() == "counted\n"
            assert len(_pids(directory)) == 2
            # prepare() sets the variable in this process: setenv records what was there (most
            # likely nothing), so that it is put back afterwards and no later test shares.
            monkeypatch.setenv(metrics_dir.VARIABLE, "")

            metrics_dir.prepare(directory)

            assert _pids(directory) == {running.pid}
            assert os.environ[metrics_dir.VARIABLE] == str(directory)
            running.stdin.close()
            assert running.wait(TIMEOUT) == 0
