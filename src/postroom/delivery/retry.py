"""When to try again: exponential backoff with jitter, a service's own hint, a last attempt."""

import random
from dataclasses import dataclass

from postroom.delivery.transports.base import DeliveryError, OutcomeUnknownError, TransientError
from postroom.settings import DeliverySettings

HELD = (
    "held for an operator: the last attempt was cut off after the data went out, so the "
    "message may have been delivered (POSTROOM_DELIVERY__UNKNOWN_OUTCOME=hold)"
)


@dataclass(frozen=True)
class Retry:
    delay_seconds: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


def backoff_seconds(attempt: int, settings: DeliverySettings, rng: random.Random) -> float:
    """base * 2^(attempt-1), capped, with the upper half jittered so retries spread out."""
    ceiling = min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2 ** (attempt - 1))
    return float(ceiling * rng.uniform(0.5, 1.0))


def decide(
    error: DeliveryError, attempt: int, settings: DeliverySettings, rng: random.Random
) -> Retry | GiveUp:
    if not isinstance(error, TransientError):
        return GiveUp("permanent failure")
    if isinstance(error, OutcomeUnknownError) and settings.unknown_outcome == "hold":
        return GiveUp(HELD)
    if attempt >= settings.max_attempts:
        return GiveUp(f"no success after {attempt} attempts")
    delay = backoff_seconds(attempt, settings, rng)
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, settings.max_retry_after_seconds))
    return Retry(delay)
