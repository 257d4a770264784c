"""Send pacing per credential, shared by every worker through the database.

A credential with `max_send_rate` r sends at most one message every 1/r seconds: its row in
send_pacing holds the next free slot. A claim locks that row (FOR UPDATE on PostgreSQL; on SQLite
the claim's BEGIN IMMEDIATE already serialises writers) and hands its messages consecutive slots
from max(next free, now). Those within the horizon are sent by this worker, each waiting for its
slot; the rest go back to the queue, due at the slot they would have had: that is not an attempt
and not a failure. Slots are reserved atomically, so any number of workers on any number of
machines never start sends for one credential less than 1/r apart (by the database's order and
their clocks, which must agree as closely as for leases).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Plan:
    slots: list[datetime]
    """When each of the first len(slots) messages may be sent (reserved)."""
    later: list[datetime]
    """When each of the others is due again (not reserved: a claim then reserves it anew)."""
    next_free: datetime


def plan_slots(
    next_free: datetime, now: datetime, rate: float, count: int, horizon_seconds: float
) -> Plan:
    interval = timedelta(seconds=1 / rate)
    first = max(next_free, now)
    every = [first + interval * n for n in range(count)]
    limit = now + timedelta(seconds=horizon_seconds)
    kept = [slot for slot in every if slot < limit]
    return Plan(
        slots=kept,
        later=every[len(kept) :],
        next_free=kept[-1] + interval if kept else next_free,
    )
