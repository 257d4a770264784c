"""The table: every figure beside its baseline, the ratio, the target, and whether it is met."""

from typing import Any

INGEST_TARGET = 0.5  # of the durable baseline's requests/s
INGEST_P99_TARGET = 3.0  # postroom's p99 over the durable baseline's, at most
DELIVERY_TARGET = 0.5  # of the bare aiosmtplib client's messages/s, per process
LISTING_TARGET = 2.0  # p50 at the most rows over p50 at the fewest, at most
MEMORY_TARGET = 1.2  # peak RSS at the most messages over the fewest, at most
ATTACHMENT_TARGET = 2.0  # a process's peak RSS growth over the attachment's size, below


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict a line of the table (also stored in the JSON as `table`)."""
    table: list[dict[str, Any]] = []

    runs = report.get("ingest", {}).get("runs", [])
    for count in sorted({r["processes"] for r in runs}):
        of = {r["server"]: r for r in runs if r["processes"] == count}
        mine, trivial, durable = of["postroom"], of["baseline"], of.get("durable")
        label = f"ingest, {count} API process{'es' if count > 1 else ''}"
        table.append(
            {
                "measure": f"{label}: requests/s, against the trivial endpoint",
                "postroom": f"{mine['per_second']:.0f}",
                "baseline": f"{trivial['per_second']:.0f}",
                "ratio": f"{_ratio(mine['per_second'], trivial['per_second']):.2f}",
                "target": "",
                "met": None,
            }
        )
        if durable is not None:
            ratio = _ratio(mine["per_second"], durable["per_second"])
            table.append(
                {
                    "measure": f"{label}: requests/s, against the durable INSERT endpoint",
                    "postroom": f"{mine['per_second']:.0f}",
                    "baseline": f"{durable['per_second']:.0f}",
                    "ratio": f"{ratio:.2f}",
                    "target": f">= {INGEST_TARGET:.2f}",
                    "met": ratio >= INGEST_TARGET,
                }
            )
        for name, base in (("trivial", trivial), ("durable", durable)):
            if base is None:
                continue
            p99 = _ratio(mine["p99_ms"], base["p99_ms"])
            table.append(
                {
                    "measure": f"{label}: p50 / p99 latency, ms, against the {name} endpoint",
                    "postroom": f"{mine['p50_ms']:.1f} / {mine['p99_ms']:.1f}",
                    "baseline": f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f}",
                    "ratio": f"{p99:.2f}" if name == "durable" else "",
                    "target": f"p99 <= {INGEST_P99_TARGET:.0f}x" if name == "durable" else "",
                    "met": p99 <= INGEST_P99_TARGET if name == "durable" else None,
                }
            )
        for batch in mine.get("batches", []):
            table.append(
                {
                    "measure": f"{label}: messages/s through batches of {batch['size']} "
                    f"({batch['connections']} connections; p50 / p99 ms a batch), against "
                    "single POSTs",
                    "postroom": f"{batch['messages_per_second']:.0f} "
                    f"({batch['p50_ms']:.0f} / {batch['p99_ms']:.0f})",
                    "baseline": f"{mine['per_second']:.0f}",
                    "ratio": f"{_ratio(batch['messages_per_second'], mine['per_second']):.2f}",
                    "target": "",
                    "met": None,
                }
            )
            table.append(
                {
                    "measure": f"{label}: CPU ms per message, batches of {batch['size']} "
                    "(server), against single POSTs",
                    "postroom": f"{batch['server_cpu_ms_per_message']:.3f}",
                    "baseline": f"{mine['server_cpu_ms_per_request']:.3f}",
                    "ratio": "",
                    "target": "",
                    "met": None,
                }
            )
        for name, run in (("postroom", mine), ("durable", durable), ("trivial", trivial)):
            if run is None:
                continue
            table.append(
                {
                    "measure": f"{label}: CPU ms per request, {name} (server / PostgreSQL; "
                    "PostgreSQL sessions opened meanwhile)",
                    "postroom": f"{run['server_cpu_ms_per_request']:.2f} / "
                    f"{run['postgres_cpu_seconds'] * 1000 / max(1, run['requests']):.2f}; "
                    f"{run.get('postgres_sessions_opened', '?')}",
                    "baseline": "",
                    "ratio": "",
                    "target": "",
                    "met": None,
                }
            )

    table += _serve_rows(report)

    runs = report.get("delivery", {}).get("runs", [])
    single = None
    for count in sorted({r["processes"] for r in runs}):
        mine = next(
            r for r in runs if r["processes"] == count and r["sender"] != "aiosmtplib baseline"
        )
        base = next(
            r for r in runs if r["processes"] == count and r["sender"] == "aiosmtplib baseline"
        )
        ratio = _ratio(mine["per_second"], base["per_second"])
        single = single or mine["per_second"]
        table.append(
            {
                "measure": f"delivery, {count} worker{'s' if count > 1 else ''} "
                f"({mine['connections']} connections): messages/s",
                "postroom": f"{mine['per_second']:.0f}",
                "baseline": f"{base['per_second']:.0f}",
                "ratio": f"{ratio:.2f}",
                "target": f">= {DELIVERY_TARGET:.2f}",
                "met": ratio >= DELIVERY_TARGET,
            }
        )
        table.append(
            {
                "measure": f"delivery, {count} worker{'s' if count > 1 else ''}: CPU ms per "
                "message, sender / PostgreSQL / sink",
                "postroom": _delivery_cpu(mine),
                "baseline": _delivery_cpu(base),
                "ratio": f"{_ratio(_cpu_per_message(mine), _cpu_per_message(base)):.2f} (sum)",
                "target": "",
                "met": None,
            }
        )
        if count > 1 and single:
            table.append(
                {
                    "measure": f"delivery, {count} workers over 1 worker",
                    "postroom": f"{mine['per_second'] / single:.2f}x",
                    "baseline": "",
                    "ratio": "",
                    "target": "grows until sink/DB saturate",
                    "met": None,
                }
            )

    timings = report.get("listing", {}).get("timings", [])
    for query in dict.fromkeys(t["query"] for t in timings):
        mine = [t for t in timings if t["query"] == query]
        smallest = min(mine, key=lambda t: t["rows"])
        for timing in sorted(mine, key=lambda t: t["rows"]):
            is_base = timing is smallest
            ratio = _ratio(timing["p50_ms"], smallest["p50_ms"])
            table.append(
                {
                    "measure": f"list ({query}), {_rows(timing['rows'])} rows: p50 / p99 ms",
                    "postroom": f"{timing['p50_ms']:.1f} / {timing['p99_ms']:.1f}",
                    "baseline": ""
                    if is_base
                    else f"{smallest['p50_ms']:.1f} (p50 at {_rows(smallest['rows'])})",
                    "ratio": "" if is_base else f"{ratio:.2f}",
                    "target": "" if is_base else f"<= {LISTING_TARGET:.1f}",
                    "met": None if is_base else ratio <= LISTING_TARGET,
                }
            )

    runs = report.get("memory", {}).get("runs", [])
    if runs:
        smallest = min(runs, key=lambda r: r["messages"])
        for run in sorted(runs, key=lambda r: r["messages"]):
            is_base = run is smallest
            ratio = _ratio(run["peak_rss_mib"], smallest["peak_rss_mib"])
            table.append(
                {
                    "measure": f"worker peak RSS after {_rows(run['messages'])} messages, MiB",
                    "postroom": f"{run['peak_rss_mib']:.1f}",
                    "baseline": ""
                    if is_base
                    else f"{smallest['peak_rss_mib']:.1f} (at {_rows(smallest['messages'])})",
                    "ratio": "" if is_base else f"{ratio:.2f}",
                    "target": "" if is_base else f"<= {MEMORY_TARGET:.2f}",
                    "met": None if is_base else ratio <= MEMORY_TARGET,
                }
            )
    table += _attachment_rows(report)
    return table


def _cpu_per_message(run: dict[str, Any]) -> float:
    return float(
        run["sender_cpu_ms_per_message"]
        + run["postgres_cpu_ms_per_message"]
        + run["sink_cpu_ms_per_message"]
    )


def _delivery_cpu(run: dict[str, Any]) -> str:
    # The baseline uses no database: its PostgreSQL figure is what else ran on the machine.
    return (
        f"{run['sender_cpu_ms_per_message']:.2f} / {run['postgres_cpu_ms_per_message']:.2f} / "
        f"{run['sink_cpu_ms_per_message']:.2f}"
    )


def _attachment_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """bench/attachments.py: each process's peak RSS growth while one file goes through it,
    against the file's size; the whole-message path in memory beside them for context."""
    found = report.get("attachment")
    if not found:
        return []
    mib = found["mib"]
    table = [
        {
            "measure": f"{mib} MiB attachment, {p['label']}: peak RSS growth, MiB",
            "postroom": f"{p['peak_rss_growth_bytes'] / 2**20:.1f}",
            "baseline": f"{mib:.1f} (the file)",
            "ratio": f"{p['x_file_size']:.2f}",
            "target": f"< {ATTACHMENT_TARGET:.0f}x the file",
            "met": p["x_file_size"] < ATTACHMENT_TARGET,
        }
        for p in found["processes"]
    ]
    table.append(
        {
            "measure": f"{mib} MiB attachment, whole message in memory (build_mime + aiosmtplib "
            "data() copies, tracemalloc; context): peak, MiB",
            "postroom": "",
            "baseline": f"{found['baseline_peak_bytes'] / 2**20:.1f}",
            "ratio": f"{found['baseline_x_file_size']:.2f}",
            "target": "",
            "met": None,
        }
    )
    return table


def _serve_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """`postroom serve` on SQLite against the trivial endpoint (one process), with the durable
    baseline on PostgreSQL beside it for context (no target: a different database)."""
    serve = report.get("serve")
    if not serve:
        return []
    mine = serve["run"]
    one = {r["server"]: r for r in report.get("ingest", {}).get("runs", []) if r["processes"] == 1}
    trivial = serve.get("trivial") or one.get("baseline")
    durable = one.get("durable")
    if trivial is None:
        return []
    cpu = mine["server_cpu_ms_per_request"]
    label = "ingest, `postroom serve` on SQLite (its worker writing .eml files)"
    table = [
        {
            "measure": f"{label}: requests/s, against the trivial endpoint",
            "postroom": f"{mine['per_second']:.0f}",
            "baseline": f"{trivial['per_second']:.0f}",
            "ratio": f"{_ratio(mine['per_second'], trivial['per_second']):.2f}",
            "target": "",
            "met": None,
        },
        {
            "measure": f"{label}: p50 / p99 latency, ms, against the trivial endpoint",
            "postroom": f"{mine['p50_ms']:.1f} / {mine['p99_ms']:.1f}",
            "baseline": f"{trivial['p50_ms']:.1f} / {trivial['p99_ms']:.1f}",
            "ratio": f"{_ratio(mine['p99_ms'], trivial['p99_ms']):.2f} (p99)",
            "target": "",
            "met": None,
        },
        {
            "measure": f"{label}: server CPU ms per request, against the trivial endpoint",
            "postroom": f"{cpu:.2f}",
            "baseline": f"{trivial['server_cpu_ms_per_request']:.2f}",
            "ratio": f"{_ratio(cpu, trivial['server_cpu_ms_per_request']):.1f}",
            "target": "",
            "met": None,
        },
    ]
    if durable is not None:
        table.append(
            {
                "measure": f"{label}: requests/s, beside the durable INSERT endpoint on "
                "PostgreSQL (context)",
                "postroom": f"{mine['per_second']:.0f}",
                "baseline": f"{durable['per_second']:.0f}",
                "ratio": f"{_ratio(mine['per_second'], durable['per_second']):.2f}",
                "target": "",
                "met": None,
            }
        )
    table.append(
        {
            "measure": f"{label}: messages the embedded worker delivered while measured, "
            "of those accepted",
            "postroom": f"{mine['delivered_while_measured']} of {mine['requests']}",
            "baseline": "",
            "ratio": "",
            "target": "",
            "met": None,
        }
    )
    return table


def _rows(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1000 and count % 1000 == 0:
        return f"{count // 1000}k"
    return str(count)


def markdown(table: list[dict[str, Any]]) -> str:
    header = ["measure", "postroom", "baseline", "ratio", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        cells = [str(row[k]) for k in header[:-1]] + [met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> str:
    machine = report["machine"]
    parts = [
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, PostgreSQL {machine.get('postgresql')}, "
        f"commit {machine.get('commit')}",
        f"load average at start {_load(machine['load_average_at_start'])}, at end "
        f"{_load(machine.get('load_average_at_end'))}",
    ]
    if "ingest" in report:
        parts.append(f"HTTP load client: {report['ingest']['client']}")
    if "sink" in report:
        parts.append(f"SMTP sink: {report['sink']}")
    parts.append(f"total time: {report.get('seconds')} s")
    return "\n".join(parts)


def _load(values: Any) -> str:
    return "?" if not values else " ".join(f"{v:.2f}" for v in values)
