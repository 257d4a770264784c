"""events/sendgrid.py through POST /inbound: SendGrid's Signed Event Webhook, signed here the way
SendGrid signs (ECDSA P-256 over the timestamp and the body, with a key the test generates), for a
message the real worker sent through the SendGrid look-alike."""

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from postroom.events.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.events.esp import (
    RECIPIENT,
    Sent,
    blocklisted,
    events_of,
    fired,
    fixture,
    kinds,
    post,
    provider_message_id,
    recorded_count,
    send_through,
    subscribe,
)
from tests.factories import make_org
from tests.harness import Harness, HarnessFactory
from tests.servers.esp import SendGridServer, serving
from tests.servers.webhook_receiver import webhook_receiver

API_KEY = "SG.test-key.not-a-real-one"


class Signer:
    """SendGrid's side of a signed event webhook: a P-256 key pair."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def verification_key(self) -> str:
        """The public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        stamp = str(timestamp)
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}


@pytest.fixture
def sendgrid() -> Iterator[SendGridServer]:
    with serving(SendGridServer(API_KEY)) as server:
        yield server


def event(name: str, sent: Sent | None, **values: Any) -> dict[str, Any]:
    """A fixture event about `sent`'s message (by postroom's id in the custom args)."""
    data = fixture("sendgrid", name)
    data["email"] = RECIPIENT
    if sent is not None:
        data["postroom_message_id"] = sent.message_id
    data.update(values)
    return data


async def send_events(
    h: Harness, sent: Sent, signer: Signer, events: list[Any], **options: Any
) -> httpx.Response:
    body = options.pop("body", None) or json.dumps(events).encode()
    stamp = options.pop("timestamp", None) or int(h.clock.now().timestamp())
    headers = signer.headers(body, stamp)
    headers.update(options.pop("headers", {}))
    return await post(options.pop("url", sent.events_url), options.pop("sent_body", body), headers)


async def sent_with_key(h: Harness, signer: Signer | None) -> Sent:
    body: dict[str, Any] = {"apiKey": API_KEY}
    if signer is not None:
        body["eventVerificationKey"] = signer.verification_key
    return await send_through(h, "sendgrid", body)


class TestEvents:
    async def test_delivered_bounce_and_spamreport_land_on_the_message_fire_webhooks_and_block(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        with webhook_receiver() as receiver:
            async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
                sent = await sent_with_key(h, signer)
                await subscribe(h, receiver)
                response = await send_events(
                    h,
                    sent,
                    signer,
                    [
                        event("delivered", sent),
                        event("open", sent),  # engagement: left out
                        event("bounce", sent),
                        event("spamreport", sent),
                    ],
                )
                assert response.status_code == 200, response.text
                events = await events_of(h, sent.message_id)
                assert kinds(events) == [
                    ("delivered", None),
                    ("bounced", "hard"),
                    ("complained", None),
                ]
                delivered, bounced, _ = events
                assert delivered["source"] == "sendgrid"
                assert delivered["recipient"] == RECIPIENT
                assert delivered["diagnostic"] == "250 OK"
                assert delivered["raw"]["sg_event_id"] == "rWVYmVk90MjZJ9iohOBa3w=="
                assert delivered["occurredTime"].startswith("2017-12-15T00:59:29")
                assert bounced["diagnostic"] == "5.0.0 500 unknown recipient (Invalid Address)"
                assert await blocklisted(h, sent.organization_id) == [RECIPIENT]
                assert sorted(await fired(h, receiver)) == sorted(
                    [
                        ("email-message-delivered", sent.message_id, "delivered"),
                        ("email-message-bounced", sent.message_id, "bounced"),
                        ("email-message-complained", sent.message_id, "complained"),
                    ]
                )

    async def test_blocked_is_a_soft_bounce_deferred_a_deferral_and_neither_blocks(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            response = await send_events(
                h, sent, signer, [event("deferred", sent), event("blocked", sent)]
            )
            assert response.status_code == 200, response.text
            events = await events_of(h, sent.message_id)
            assert kinds(events) == [("deferred", None), ("bounced", "soft")]
            assert events[0]["diagnostic"] == "400 try again later"
            assert await blocklisted(h, sent.organization_id) == []

    async def test_dropped_for_a_bounced_address_is_a_hard_bounce_other_drops_are_left_out(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            unsubscribed = event(
                "dropped", sent, reason="Unsubscribed Address", sg_event_id="other-drop"
            )
            response = await send_events(h, sent, signer, [event("dropped", sent), unsubscribed])
            assert response.status_code == 200, response.text
            [dropped] = await events_of(h, sent.message_id)
            assert (dropped["type"], dropped["bounceType"]) == ("bounced", "hard")
            assert dropped["diagnostic"] == "dropped by SendGrid: Bounced Address"

    async def test_found_by_sendgrids_message_id_without_custom_args(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            # sg_message_id: the X-Message-Id SendGrid answered the send with, a dot, and more.
            x_message_id = await provider_message_id(h, sent.message_id)
            delivered = event("delivered", None, sg_message_id=f"{x_message_id}.filter0001.1.0")
            response = await send_events(h, sent, signer, [delivered])
            assert response.status_code == 200, response.text
            assert kinds(await events_of(h, sent.message_id)) == [("delivered", None)]

    async def test_the_same_event_sent_twice_is_recorded_once(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            for _ in range(2):
                response = await send_events(h, sent, signer, [event("bounce", sent)])
                assert response.status_code == 200, response.text
                h.clock.advance(timedelta(seconds=30))
            assert len(await events_of(h, sent.message_id)) == 1

    async def test_an_unknown_message_is_200_and_nothing_recorded(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            unknown = event("bounce", None, postroom_message_id="mail_msg_01JDNOSUCHMESSAGE00000")
            response = await send_events(h, sent, signer, [unknown])
            assert response.status_code == 200, response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []

    async def test_another_organizations_message_is_not_touched(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer, intruder = Signer(), Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            other = await make_org(h.sessionmaker, "intruder")
            theirs = await h.client.post(
                "/service-credentials/sendgrid",
                json={"apiKey": "SG.theirs", "eventVerificationKey": intruder.verification_key},
                headers={"REB-APIKEY": other.api_key},
            )
            assert theirs.status_code == 201, theirs.text
            response = await send_events(
                h, sent, intruder, [event("bounce", sent)], url=theirs.json()["eventsUrl"]
            )
            assert response.status_code == 200, response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []


class TestRefused:
    @pytest.mark.parametrize("case", ["tampered", "wrong key", "stale", "future", "unsigned"])
    async def test_a_request_not_signed_now_by_the_credentials_key_is_403_and_records_nothing(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer, case: str
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            events = [event("bounce", sent)]
            now = int(h.clock.now().timestamp())
            every: dict[str, dict[str, Any]] = {
                "tampered": {"sent_body": json.dumps([event("delivered", sent)]).encode()},
                "stale": {"timestamp": now - 301},
                "future": {"timestamp": now + 301},
                "unsigned": {"headers": {SIGNATURE_HEADER: ""}},
            }
            options = every.get(case, {})
            response = await send_events(
                h, sent, Signer() if case == "wrong key" else signer, events, **options
            )
            assert response.status_code == 403, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []

    async def test_within_the_tolerance_a_signed_request_is_taken(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            stamp = int(h.clock.now().timestamp()) - 290
            response = await send_events(h, sent, signer, [event("bounce", sent)], timestamp=stamp)
            assert response.status_code == 200, response.text

    async def test_a_credential_without_a_verification_key_refuses_everything(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, None)
            response = await send_events(h, sent, signer, [event("bounce", sent)])
            assert response.status_code == 403, response.text
            assert "eventVerificationKey" in response.json()["detail"]
            assert await recorded_count(h) == 0

    async def test_a_signed_body_that_is_not_an_array_of_events_is_400(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            sent = await sent_with_key(h, signer)
            for body in (b"{not json", b'{"event": "bounce"}', b"\xff\xfe"):
                response = await send_events(h, sent, signer, [], body=body)
                assert response.status_code == 400, response.text
            odd: list[Any] = [
                event("bounce", sent, timestamp="soon", email={"a": 1}, sg_event_id=None),
                "not an event",
                event("delivered", sent, reason="a\x00b" * 5000, sg_event_id=7),
            ]
            response = await send_events(h, sent, signer, odd)
            assert response.status_code == 200, response.text
            found = {e["type"]: e for e in await events_of(h, sent.message_id)}
            bounce, delivered = found["bounced"], found["delivered"]
            assert bounce["recipient"] is None
            # No time of its own: when it was received.
            assert bounce["occurredTime"] == bounce["createdTime"]
            assert "\x00" not in delivered["diagnostic"]


class TestCredential:
    async def test_the_key_is_shown_patchable_and_removable(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        first, second = Signer(), Signer()
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            created = await h.client.post(
                "/service-credentials/sendgrid",
                json={"apiKey": API_KEY, "eventVerificationKey": first.verification_key},
            )
            assert created.status_code == 201, created.text
            assert created.json()["eventVerificationKey"] == first.verification_key
            url = f"/service-credentials/sendgrid/{created.json()['id']}"
            patched = await h.client.patch(
                url, json={"eventVerificationKey": second.verification_key}
            )
            assert patched.status_code == 200, patched.text
            assert (await h.client.get(url)).json()["eventVerificationKey"] == (
                second.verification_key
            )
            removed = await h.client.patch(url, json={"eventVerificationKey": None})
            assert removed.status_code == 200, removed.text
            assert "eventVerificationKey" not in (await h.client.get(url)).json()

    async def test_a_key_given_as_pem_is_kept_as_sendgrid_shows_it(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer
    ) -> None:
        signer = Signer()
        pem = (
            signer.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            created = await h.client.post(
                "/service-credentials/sendgrid",
                json={"apiKey": API_KEY, "eventVerificationKey": pem},
            )
            assert created.status_code == 201, created.text
            assert created.json()["eventVerificationKey"] == signer.verification_key

    @pytest.mark.parametrize(
        "key",
        [
            "not base64!",
            base64.b64encode(b"not a key").decode(),
            "",
            # A P-384 key: the right shape, the wrong curve.
            base64.b64encode(
                ec.generate_private_key(ec.SECP384R1())
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).decode(),
        ],
    )
    async def test_a_key_that_is_not_p256_is_422_naming_the_field(
        self, harness_factory: HarnessFactory, sendgrid: SendGridServer, key: str
    ) -> None:
        async with harness_factory(providers={"sendgrid_url": sendgrid.url}) as h:
            created = await h.client.post(
                "/service-credentials/sendgrid",
                json={"apiKey": API_KEY, "eventVerificationKey": key},
            )
            assert created.status_code == 422, created.text
            assert [p["field"] for p in created.json()["invalidFields"]] == ["eventVerificationKey"]
            plain = await h.client.post("/service-credentials/sendgrid", json={"apiKey": API_KEY})
            patched = await h.client.patch(
                f"/service-credentials/sendgrid/{plain.json()['id']}",
                json={"eventVerificationKey": key},
            )
            assert patched.status_code == 422, patched.text
            assert [p["field"] for p in patched.json()["invalidFields"]] == ["eventVerificationKey"]
