"""The benchmark (bench/, `python -m bench`) at its smoke size, so that the harness cannot rot:
every section runs end to end against real processes on 127.0.0.1, and every message is
accounted for. It asserts correctness only, never a speed.

It takes the fallbacks every machine has (the asyncio HTTP client, the aiosmtpd sink), not wrk
or Postfix's smtp-sink, which a full run prefers when they are installed."""

from pathlib import Path

import pytest

from bench import inprocess, report
from bench.run import SMOKE, Options, run
from tests.databases import BACKEND, DatabaseFactory

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql", reason="the benchmark measures postroom on PostgreSQL"
)


async def test_every_section_runs_and_every_message_is_delivered(
    databases: DatabaseFactory,  # PostgreSQL answers (or the run is skipped, or fails in CI)
    tmp_path: Path,
) -> None:
    result = await run(
        Options(
            sizes=SMOKE,
            load_client="python",
            sink="aiosmtpd",
            workdir=tmp_path / "logs",
            log=lambda line: None,
        )
    )

    ingest = result["ingest"]["runs"]
    assert {(r["server"], r["processes"]) for r in ingest} == {
        ("baseline", 1),
        ("durable", 1),
        ("postroom", 1),
    }
    for run_ in ingest:
        assert run_["requests"] > 0 and run_["errors"] == 0
    for stores in ("durable", "postroom"):
        [run_] = [r for r in ingest if r["server"] == stores]
        assert run_["stored"] >= run_["requests"]  # every 201 is a stored message
    # Batches against the same postroom process: every item of every batch stored.
    [postroom] = [r for r in ingest if r["server"] == "postroom"]
    assert [b["size"] for b in postroom["batches"]] == list(SMOKE.ingest_batch_sizes)
    for batch in postroom["batches"]:
        assert batch["requests"] > 0 and batch["errors"] == 0
        assert batch["stored"] >= batch["requests"] * batch["size"]

    # postroom serve on SQLite: every 201 a stored row (serve.measure fails otherwise, too).
    served = result["serve"]["run"]
    assert served["requests"] > 0 and served["errors"] == 0
    assert served["stored"] >= served["requests"]
    assert result["serve"]["trivial"] is None  # the ingest section's one process is reused

    # run_workers fails unless every message ends `sent` with exactly one attempt.
    delivery = result["delivery"]["runs"]
    assert [r["sender"] for r in delivery] == ["aiosmtplib baseline", "postroom worker"]
    assert all(r["messages"] == SMOKE.delivery_messages for r in delivery)
    assert result["sink"] == "aiosmtpd (Python)"

    timings = result["listing"]["timings"]
    assert {(t["rows"], t["query"]) for t in timings} == {
        (rows, query) for rows in SMOKE.listing_rows for query in {t["query"] for t in timings}
    }
    for timing in timings:
        if timing["query"].startswith("no filter"):
            assert timing["pagination_total"] == timing["rows"]
        else:
            assert 0 < timing["pagination_total"] < timing["rows"]

    # The attachment went through the API and the worker and arrived byte for byte.
    attachment = result["attachment"]
    assert attachment["mib"] == SMOKE.attachment_mib and attachment["arrived_byte_for_byte"]
    assert {p["process"] for p in attachment["processes"]} == {"api", "worker"}

    table = report.rows(result)
    measures = [row["measure"] for row in table]
    for start in (
        "ingest, 1 API process: requests/s",
        "ingest, 1 API process: messages/s through batches of 10",
        "ingest, `postroom serve` on SQLite",
        "delivery, 1 worker (",
        "delivery, 1 worker: CPU ms per message",
        f"{SMOKE.attachment_mib} MiB attachment, API",
        f"{SMOKE.attachment_mib} MiB attachment, worker",
    ):
        assert any(m.startswith(start) for m in measures), start
    assert "| measure |" in report.markdown(table)


async def test_the_in_process_measures_run(
    databases: DatabaseFactory,  # PostgreSQL answers (or the run is skipped, or fails in CI)
) -> None:
    # post() fails unless every POST was answered 201; smtp() unless every send was accepted;
    # deliver() unless the worker emptied the queue.
    figures = await inprocess.post(requests=20, concurrency=4, rounds=2)
    assert len(figures) == 2 and all(f > 0 for f in figures)
    figures = await inprocess.smtp(messages=20, rounds=2)
    assert len(figures) == 2 and all(f > 0 for f in figures)
    figures = await inprocess.deliver(messages=20, rounds=2)
    assert len(figures) == 2 and all(f > 0 for f in figures)
