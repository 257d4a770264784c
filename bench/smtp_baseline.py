"""The delivery baseline: a bare aiosmtplib client sending pre-built messages, no database.

`python -m bench.smtp_baseline --port P --connections C --count N` builds N messages with
postroom's own build_mime first (the same bytes a worker sends), prints READY, waits for a line
on stdin, then sends them over C connections (MAIL, RCPT, DATA each, as the SMTP transport does)
and prints one `BENCH {json}` line: how many were accepted, when it started and ended
(CLOCK_MONOTONIC, which every process on the machine shares), and the CPU time it used.
"""

import argparse
import asyncio
import json
import sys
import time

import aiosmtplib

from bench import payload
from postroom.core import event_loop
from postroom.core.ids import new_id
from postroom.delivery.mime import build_mime


async def _connection(port: int, queue: list[tuple[str, bytes]]) -> int:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    await client.connect()
    sent = 0
    try:
        while queue:
            recipient, data = queue.pop()
            await client.sendmail(payload.SENDER, [recipient], data)
            sent += 1
    finally:
        await client.quit()
    return sent


async def _send(args: argparse.Namespace, messages: list[tuple[str, bytes]]) -> dict[str, float]:
    started, cpu = time.monotonic(), time.process_time()
    sent = await asyncio.gather(
        *(_connection(args.port, messages) for _ in range(args.connections))
    )
    return {
        "sent": sum(sent),
        "started": started,
        "ended": time.monotonic(),
        "cpu": time.process_time() - cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    messages = [
        (payload.recipient(n), build_mime(payload.outgoing(new_id("mail_msg_"), n)))
        for n in range(args.count)
    ]
    print("READY", flush=True)
    sys.stdin.readline()
    # On the event loop postroom's worker runs on (uvloop), so that only the work differs.
    result = event_loop.run(_send(args, messages))
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
