"""`python -m bench`: the whole benchmark (under 15 minutes), or `--smoke` (seconds).

Run from the repository root with the project's environment: `.venv/bin/python -m bench`.
It needs PostgreSQL on 127.0.0.1:5432 (POSTROOM_BENCH_POSTGRES_URL to change that), creates a
database of its own and drops it afterwards, prints the table, and writes the JSON report
(and every process's log) under bench/results/.
"""

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import profiles
from bench import report as tables
from bench.run import FULL, SECTIONS, SMOKE, Options, run

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not figures")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}"
    )
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--sink", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument("--json", type=Path, help="where to write the JSON report")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy (if installed) on every postroom process"
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a size, e.g. delivery_messages=5000 or delivery_workers=1,2",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the workers (experiments; the table is then not "
        "the defaults'), e.g. POSTROOM_DELIVERY__BATCH_SIZE=200",
    )
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = RESULTS / f"{stamp}{'-smoke' if args.smoke else ''}"
    sizes = SMOKE if args.smoke else FULL
    for item in args.size:
        name, _, value = item.partition("=")
        current = getattr(sizes, name, None)
        if current is None:
            parser.error(f"no size named {name}")
        parsed: Any
        if isinstance(current, tuple):
            parsed = tuple(int(v) for v in value.split(",") if v)
        else:
            parsed = type(current)(value)
        sizes = replace(sizes, **{name: parsed})
    options = Options(
        sizes=sizes,
        profile=args.profile,
        worker_env=dict(item.split("=", 1) for item in args.worker_env),
        sections=sections,
        load_client=args.client,
        sink=args.sink,
        workdir=workdir / "logs",
    )
    result = asyncio.run(run(options))
    result["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    table = tables.rows(result)
    result["table"] = table
    output = args.json or workdir / "report.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(tables.summary(result))
    print()
    print(tables.markdown(table))
    print(f"\nJSON: {output}")
    for section, found in (result.get("profiles") or {}).items():
        print(f"\n## profiles: {section} (py-spy, samples holding the GIL, measured part only)")
        for summary in found:
            print()
            print(profiles.text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
