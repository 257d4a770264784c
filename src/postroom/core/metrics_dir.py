"""Metrics that add up across the processes of one host: prometheus_client's multiprocess mode.

Each process writes its samples into files of its own in one directory (PROMETHEUS_MULTIPROC_DIR,
read by prometheus_client when it is first imported, so it must be in a process's environment
before it starts); /metrics reads them all and adds them up. `postroom api` sets it for its
processes; a `postroom worker` started with the same variable joins in.
"""

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Files a process writes: e.g. counter_1234.db, gauge_livemostrecent_1234.db.
_FILE = re.compile(r"^(?P<kind>[a-z_]+)_(?P<pid>\d+)\.db$")


def shared_directory() -> Path | None:
    """The directory this process writes its samples to, if it shares them."""
    value = os.environ.get(VARIABLE)
    return Path(value) if value else None


def ensure_shared_directory() -> None:
    """Creates the shared directory if the variable names one that is missing: prometheus_client
    opens its files there as the metrics are defined, and would fail on import (a worker started
    before the API that usually creates it)."""
    directory = shared_directory()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)


def prepare(directory: Path) -> None:
    """Makes `directory` the one every process started from here shares (set before they
    start), cleaned of what processes no longer running left there: an earlier run's samples
    start again from zero, as any restarted process's do (Prometheus's rate() sees a reset),
    and a new process that gets an old one's pid does not carry on from its numbers. A process
    still running (a worker sharing the directory) keeps its files."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        found = _FILE.match(path.name)
        if found is not None and not _running(int(found["pid"])):
            path.unlink(missing_ok=True)
    os.environ[VARIABLE] = str(directory)


def process_ended() -> None:
    """What a sharing process does as it exits: its live gauges leave the sum; its counters and
    histograms stay, so that totals do not go down while the others run."""
    directory = shared_directory()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


def registry() -> CollectorRegistry | None:
    """A registry of every sharing process's samples added up; None when this process does not
    share (its own samples are the default registry's)."""
    directory = shared_directory()
    if directory is None:
        return None
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=str(directory))  # type: ignore[no-untyped-call]
    return collected


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
