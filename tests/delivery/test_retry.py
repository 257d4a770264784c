"""delivery/retry.decide, the pure policy: for every class of answer, what happens next."""

import random

import pytest

from postroom.delivery.retry import HELD, GiveUp, Retry, backoff_seconds, decide
from postroom.delivery.transports.base import (
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    TransientError,
)
from postroom.settings import DeliverySettings

SETTINGS = DeliverySettings(
    max_attempts=5, backoff_base_seconds=30, backoff_max_seconds=600, max_retry_after_seconds=900
)


def _decide(error: DeliveryError, attempt: int = 1, **settings: object) -> Retry | GiveUp:
    return decide(error, attempt, SETTINGS.model_copy(update=settings), random.Random(7))


class TestClasses:
    def test_permanent_gives_up_at_once(self) -> None:
        assert _decide(PermanentError("550 no such user", code=550)) == GiveUp("permanent failure")

    def test_transient_is_retried_after_the_backoff(self) -> None:
        decision = _decide(TransientError("451 try later", code=451))
        assert isinstance(decision, Retry)
        assert (
            15 <= decision.delay_seconds <= 30
        )  # the first step: base, jittered in its upper half

    def test_unknown_outcome_is_retried_by_default(self) -> None:
        assert isinstance(_decide(OutcomeUnknownError("cut off after DATA")), Retry)

    def test_unknown_outcome_is_held_when_the_operator_says_so(self) -> None:
        assert _decide(OutcomeUnknownError("cut off"), unknown_outcome="hold") == GiveUp(HELD)

    def test_the_last_attempt_gives_up_with_the_count(self) -> None:
        decision = _decide(TransientError("451"), attempt=5)
        assert decision == GiveUp("no success after 5 attempts")

    def test_the_attempt_before_the_last_is_still_retried(self) -> None:
        assert isinstance(_decide(TransientError("451"), attempt=4), Retry)


class TestRetryAfter:
    def test_a_longer_hint_is_honoured(self) -> None:
        assert _decide(TransientError("429", retry_after=300)) == Retry(300)

    def test_a_shorter_hint_does_not_shorten_the_backoff(self) -> None:
        decision = _decide(TransientError("429", retry_after=1), attempt=3)
        assert isinstance(decision, Retry)
        assert decision.delay_seconds >= 60  # 30 * 2^2 = 120, jittered to at least half

    def test_the_hint_is_capped_by_max_retry_after_seconds(self) -> None:
        assert _decide(TransientError("429", retry_after=86_400)) == Retry(900)

    def test_the_hint_of_an_unknown_outcome_is_capped_too(self) -> None:
        assert _decide(OutcomeUnknownError("cut off", retry_after=86_400)) == Retry(900)


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_doubles_within_its_cap_and_jitter(attempt: int) -> None:
    ceiling = min(600, 30 * 2 ** (attempt - 1))
    delays = [backoff_seconds(attempt, SETTINGS, random.Random(seed)) for seed in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1  # spread out, not one instant for every message
