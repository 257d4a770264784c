"""Sending one delivery to a real receiver on loopback: signature, auth, the answer's verdict."""

import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from postroom.core.destinations import DestinationPolicy
from postroom.webhooks import retry
from postroom.webhooks.client import Credential, Outgoing, Verdict, WebhookClient
from tests.servers.webhook_receiver import Reply, WebhookReceiver, webhook_receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = json.dumps({"id": "evt_1", "type": "email-message-sent", "data": {}}).encode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    sender = WebhookClient(DestinationPolicy(["127.0.0.1"]), connect_timeout=5, timeout=2)
    yield sender
    await sender.aclose()


def outgoing(url: str, **changes: object) -> Outgoing:
    fields: dict[str, object] = {
        "delivery_id": "msg_1",
        "method": "POST",
        "url": url,
        "headers": {"X-Customer": "yes"},
        "body": BODY,
        "secrets": (SECRET,),
    }
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


async def test_signature_verifies_with_standardwebhooks_and_fails_on_a_changed_byte(
    receiver: WebhookReceiver, client: WebhookClient
) -> None:
    answer = await client.send(outgoing(receiver.url + "/sig"), datetime.now(UTC))
    assert answer.verdict is Verdict.SUCCEEDED and answer.status == 200
    (got,) = receiver.received("/sig")
    assert got.body == BODY and got.headers["webhook-id"] == "msg_1"
    assert got.headers["x-customer"] == "yes"
    assert Webhook(SECRET).verify(got.body, got.headers) == json.loads(BODY)
    changed = bytes([got.body[0] ^ 1]) + got.body[1:]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(changed, got.headers)
    # Neither the signature nor any auth is kept with the attempt.
    assert "webhook-signature" not in answer.request_headers
    assert answer.request_headers["webhook-id"] == "msg_1"


async def test_during_rotation_both_secrets_verify(
    receiver: WebhookReceiver, client: WebhookClient
) -> None:
    await client.send(
        outgoing(receiver.url + "/rotate", secrets=(SECRET, OLD_SECRET)), datetime.now(UTC)
    )
    (got,) = receiver.received("/rotate")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(got.body, got.headers)
    Webhook(OLD_SECRET).verify(got.body, got.headers)


@pytest.mark.parametrize("kind", ["basic", "digest"])
async def test_credential_auth_reaches_the_receiver(
    receiver: WebhookReceiver, client: WebhookClient, kind: str
) -> None:
    path = f"/auth-{kind}"
    receiver.require_auth(path, kind, "hook-user", "s3cret pass")
    credential = Credential(kind, "hook-user", "s3cret pass")  # type: ignore[arg-type]
    answer = await client.send(
        outgoing(receiver.url + path, credential=credential), datetime.now(UTC)
    )
    assert answer.verdict is Verdict.SUCCEEDED
    assert receiver.received(path)[-1].authorized is True
    assert "authorization" not in answer.request_headers
    Webhook(SECRET).verify(receiver.received(path)[-1].body, receiver.received(path)[-1].headers)


async def test_wrong_credential_is_a_failed_attempt(
    receiver: WebhookReceiver, client: WebhookClient
) -> None:
    receiver.require_auth("/auth-wrong", "digest", "hook-user", "right")
    credential = Credential("digest", "hook-user", "wrong")
    answer = await client.send(
        outgoing(receiver.url + "/auth-wrong", credential=credential), datetime.now(UTC)
    )
    assert answer.verdict is Verdict.RETRY and answer.status == 401
    assert "wrong" not in repr(credential)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (Reply(410), Verdict.GONE),
        (Reply(500, body=b"broken"), Verdict.RETRY),
        (Reply(404), Verdict.RETRY),
        (Reply(301, {"location": "http://example.com/"}), Verdict.RETRY),
        (Reply(204), Verdict.SUCCEEDED),
    ],
)
async def test_verdicts(
    receiver: WebhookReceiver, client: WebhookClient, reply: Reply, verdict: Verdict
) -> None:
    path = f"/verdict-{reply.status}"
    receiver.script(path, reply)
    answer = await client.send(outgoing(receiver.url + path), datetime.now(UTC))
    assert (answer.verdict, answer.status) == (verdict, reply.status)
    assert answer.response == reply.body.decode()
    assert len(receiver.received(path)) == 1  # a redirect is not followed


async def test_429_carries_retry_after(receiver: WebhookReceiver, client: WebhookClient) -> None:
    receiver.script("/busy", Reply(429, {"retry-after": "120"}))
    answer = await client.send(outgoing(receiver.url + "/busy"), datetime.now(UTC))
    assert (answer.verdict, answer.retry_after) == (Verdict.RETRY, 120.0)
    rng = random.Random(1)
    assert retry.next_delay(1, rng, retry_after=answer.retry_after) == 120.0
    assert retry.next_delay(1, rng, retry_after=10**9, max_retry_after=3600) == 3600


async def test_a_hanging_receiver_is_a_timeout(
    receiver: WebhookReceiver, client: WebhookClient
) -> None:
    receiver.script("/hang", Reply(hang=True))
    answer = await client.send(outgoing(receiver.url + "/hang"), datetime.now(UTC))
    assert answer.verdict is Verdict.RETRY and answer.status is None
    assert answer.error is not None and "timeout" in answer.error


async def test_response_is_read_up_to_64_kib(
    receiver: WebhookReceiver, client: WebhookClient
) -> None:
    receiver.script("/big", Reply(200, body=b"x" * (200 * 1024)))
    answer = await client.send(outgoing(receiver.url + "/big"), datetime.now(UTC))
    assert answer.verdict is Verdict.SUCCEEDED and len(answer.response) == 64 * 1024


async def test_a_private_address_is_refused_without_a_request(receiver: WebhookReceiver) -> None:
    strict = WebhookClient(DestinationPolicy(), connect_timeout=5, timeout=2)
    try:
        for url in (
            receiver.url + "/private",
            receiver.url.replace("127.0.0.1", "localhost") + "/private",
        ):
            answer = await strict.send(outgoing(url), datetime.now(UTC))
            assert answer.verdict is Verdict.RETRY and answer.status is None
            assert answer.error is not None and "not an allowed destination" in answer.error
    finally:
        await strict.aclose()
    assert receiver.received("/private") == []


async def test_a_receiver_that_is_down_is_a_connection_error(client: WebhookClient) -> None:
    with webhook_receiver() as gone:
        url = gone.url
    answer = await client.send(outgoing(url + "/x"), datetime.now(UTC))
    assert answer.verdict is Verdict.RETRY and answer.error is not None
    assert answer.error.startswith("connection error")


def test_schedule_spans_a_day_and_ends() -> None:
    rng = random.Random(7)
    for _ in range(100):
        delays = [retry.next_delay(n, rng) for n in range(1, retry.MAX_ATTEMPTS)]
        assert all(d is not None for d in delays)
        assert sum(d for d in delays if d is not None) >= 24 * 3600
    assert retry.next_delay(retry.MAX_ATTEMPTS, rng) is None
    assert retry.MAX_ATTEMPTS == 8
