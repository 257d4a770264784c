"""The simulator: a credential type for users' own tests. It sends nothing and answers by
recipient address, like a provider's sandbox but with every failure too, so each outcome can be
exercised through the real pipeline (claim, attempts, retries, final state).

The first recipient (To, then Cc, then Bcc) whose local part, before any `+tag`, names a
scenario decides; any other address is delivered:

    delivered@…     200, accepted                       -> sent
    softfail@…      503, try again                      -> retried with backoff; failed after
                                                           the last attempt
    hardfail@…      422, refused for good               -> failed at once
    ratelimited@…   429 with Retry-After: 60            -> retried no sooner than 60 s later;
                                                           failed after the last attempt
    timeout@…       no answer after the request went    -> outcome unknown: retried (or held,
                    out                                    with unknown_outcome=hold)
"""

import json
from dataclasses import replace

import httpx

from postroom.core.ids import new_id
from postroom.delivery.mime import OutgoingMessage
from postroom.delivery.transports.base import OutcomeUnknownError, Receipt
from postroom.delivery.transports.http import HttpAnswer, classify

RATE_LIMIT_WAIT = 60
_ANSWERS: dict[str, tuple[int, dict[str, str], str]] = {
    "softfail": (503, {}, "Service temporarily unavailable (simulated soft failure)"),
    "hardfail": (422, {}, "Recipient address rejected (simulated hard failure)"),
    "ratelimited": (
        429,
        {"Retry-After": str(RATE_LIMIT_WAIT)},
        f"Too many requests (simulated); retry after {RATE_LIMIT_WAIT} seconds",
    ),
}
SCENARIOS = ("delivered", "timeout", *_ANSWERS)


def scenario_of(message: OutgoingMessage) -> str:
    for address in message.recipients:
        local = address.rpartition("@")[0].partition("+")[0].lower()
        if local in SCENARIOS:
            return local
    return "delivered"


class SimulatorTransport:
    name = "simulator"

    async def send(self, message: OutgoingMessage) -> Receipt:
        scenario = scenario_of(message)
        if scenario == "timeout":
            raise OutcomeUnknownError(
                "no answer in time after the request was sent (simulated timeout); "
                "the message may have been accepted"
            )
        sent_id = None
        if scenario == "delivered":
            status, headers = 200, dict[str, str]()
            sent_id = new_id("sim_")
            body = {"id": sent_id, "message": "Accepted (simulated: nothing was sent)"}
        else:
            status, headers, text = _ANSWERS[scenario]
            body = {"message": text}
        # The same classification as every provider's answer, so the outcome is the real one.
        receipt = classify(HttpAnswer(status, httpx.Headers(headers), json.dumps(body)))
        return replace(receipt, provider_message_id=sent_id)

    async def aclose(self) -> None:
        return None
