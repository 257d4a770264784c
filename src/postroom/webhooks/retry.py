"""When a webhook delivery is tried again: Standard Webhooks' schedule, each wait jittered by
±10 % so that the retries of one outage do not all arrive together.

Attempt 1 is made at once; after a failed attempt n the next one waits SCHEDULE[n-1]:
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. Eight attempts over about 27.6 hours (never less
than 24.8 with the jitter); after the eighth the delivery is failed. An endpoint's Retry-After
(429 or 503) lengthens a wait, never shortens it, and is capped."""

import random

SCHEDULE: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1


def next_delay(
    attempt: int,
    rng: random.Random,
    *,
    retry_after: float | None = None,
    max_retry_after: float = 6 * 3600,
) -> float | None:
    """Seconds to wait after failed attempt `attempt` (1-based); None after the last one."""
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = SCHEDULE[attempt - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay
