"""Send pacing per credential, shared by every worker through the database.

A credential with `max_send_rate` r sends at most one message every 1/r seconds: its row in
send_pacing holds the next free slot. A claim locks that row (FOR UPDATE on PostgreSQL; on SQLite
the claim's BEGIN IMMEDIATE already serialises writers) and hands its messages consecutive slots
from max(next free, now + a short lead), `now` read after the lock was granted. Those within the
horizon are sent by this worker, each waiting for its slot; the rest go back to the queue, due at
the slot they would have had: that is not an attempt and not a failure. A send that cannot start
in time for its slot goes back the same way. Slots are reserved atomically, so any number of
workers on any number of machines never start sends for one credential less than 1/r apart (by
the database's order and their clocks, which must agree as closely as for leases).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

# How late a send may start after its slot. A worker stalled past that (a busy CPU, a slow first
# connection) does not send: the message goes back to the queue, so late sends never bunch with
# the punctual ones. Sends thus start in [slot, slot + lateness), and any one-second window holds
# at most floor(rate * (1 + lateness)) + 1 of them: rate + 1 while lateness < 1/rate.
# A quarter of an interval leaves the rest of it to the network's own jitter before an arrival
# could land in the next slot's place.
MIN_LATENESS_SECONDS = 0.01


def max_lateness(rate: float) -> timedelta:
    """A quarter of an interval, but at least 10 ms (at a high rate, most slots would be missed)."""
    return timedelta(seconds=max(0.25 / rate, MIN_LATENESS_SECONDS))


# The first slot of a claim is at least this far after the moment its plan is made (with the
# pacing row locked): the rest of the claim (its inserts, its commit) happens before any send,
# and a slot that passed meanwhile would be sent late, together with the next ones, as a burst.
LEAD_SECONDS = 0.05


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
    first = max(next_free, now + timedelta(seconds=LEAD_SECONDS))
    every = [first + interval * n for n in range(count)]
    limit = now + timedelta(seconds=horizon_seconds)
    kept = [slot for slot in every if slot < limit]
    return Plan(
        slots=kept,
        later=every[len(kept) :],
        next_free=kept[-1] + interval if kept else next_free,
    )
