"""events/mailgun.py through POST /inbound: Mailgun's webhooks, signed here the way Mailgun signs
(HMAC-SHA256 of the timestamp and a fresh token with the webhook signing key), for a message the
real worker sent through the Mailgun look-alike."""

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

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
from tests.servers.esp import MailgunServer, serving
from tests.servers.webhook_receiver import webhook_receiver

API_KEY = "key-0123456789abcdef-test"
DOMAIN = "mg.example.com"
SIGNING_KEY = "whsec-mailgun-" + "0f" * 16


@pytest.fixture
def mailgun() -> Iterator[MailgunServer]:
    with serving(MailgunServer(API_KEY, DOMAIN)) as server:
        yield server


def credential(**overrides: Any) -> dict[str, Any]:
    return {
        "emailFrom": "billing@example.com",
        "apiKey": API_KEY,
        "domain": DOMAIN,
        "webhookSigningKey": SIGNING_KEY,
        **overrides,
    }


def signed(
    h: Harness, data: dict[str, Any], *, key: str = SIGNING_KEY, **signature: Any
) -> dict[str, Any]:
    """A webhook request as Mailgun sends it: `data` and a fresh signature block."""
    timestamp = str(signature.pop("timestamp", int(h.clock.now().timestamp())))
    token = signature.pop("token", secrets.token_hex(25))
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest},
        "event-data": data,
    }


def event(name: str, sent: Sent | None, **values: Any) -> dict[str, Any]:
    """A fixture's event-data about `sent`'s message (by postroom's id in user-variables)."""
    data: dict[str, Any] = fixture("mailgun", name)["event-data"]
    data["recipient"] = RECIPIENT
    if sent is not None:
        data["user-variables"]["postroom_message_id"] = sent.message_id
    data.update(values)
    return data


async def send(sent: Sent, request: dict[str, Any], url: str | None = None) -> httpx.Response:
    return await post(url or sent.events_url, json.dumps(request).encode())


async def sent_message(h: Harness, **overrides: Any) -> Sent:
    return await send_through(h, "mailgun", credential(**overrides))


class TestEvents:
    async def test_delivered_failed_and_complained_land_on_the_message_fire_webhooks_and_block(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        with webhook_receiver() as receiver:
            async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
                sent = await sent_message(h)
                await subscribe(h, receiver)
                for name in ("delivered", "opened", "failed-permanent", "complained"):
                    response = await send(sent, signed(h, event(name, sent)))
                    assert response.status_code == 200, response.text
                events = await events_of(h, sent.message_id)
                assert sorted(kinds(events)) == [
                    ("bounced", "hard"),
                    ("complained", None),
                    ("delivered", None),
                ]
                by_type = {e["type"]: e for e in events}
                assert by_type["delivered"]["source"] == "mailgun"
                assert by_type["delivered"]["recipient"] == RECIPIENT
                assert by_type["delivered"]["diagnostic"] == "250 OK"
                assert by_type["delivered"]["occurredTime"].startswith("2018-03-19T15:11:02")
                assert by_type["bounced"]["diagnostic"] == (
                    "550 5.1.1 The email account that you tried to reach does not exist."
                )
                assert await blocklisted(h, sent.organization_id) == [RECIPIENT]
                assert sorted(await fired(h, receiver)) == sorted(
                    [
                        ("email-message-delivered", sent.message_id, "delivered"),
                        ("email-message-bounced", sent.message_id, "bounced"),
                        ("email-message-complained", sent.message_id, "complained"),
                    ]
                )

    async def test_a_temporary_failure_is_a_deferral_and_does_not_block(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            response = await send(sent, signed(h, event("failed-temporary", sent)))
            assert response.status_code == 200, response.text
            [deferred] = await events_of(h, sent.message_id)
            assert (deferred["type"], deferred["bounceType"]) == ("deferred", None)
            assert "over quota" in deferred["diagnostic"]
            assert await blocklisted(h, sent.organization_id) == []

    async def test_found_by_mailguns_message_id_without_user_variables(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            # Mailgun's send answered <id>; its events (and the attempt) name it without brackets.
            delivered = event("delivered", None)
            delivered["message"]["headers"]["message-id"] = await provider_message_id(
                h, sent.message_id
            )
            response = await send(sent, signed(h, delivered))
            assert response.status_code == 200, response.text
            assert kinds(await events_of(h, sent.message_id)) == [("delivered", None)]

    async def test_the_same_event_signed_twice_is_recorded_once(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            for _ in range(2):
                response = await send(sent, signed(h, event("failed-permanent", sent)))
                assert response.status_code == 200, response.text
                h.clock.advance(timedelta(seconds=30))
            assert len(await events_of(h, sent.message_id)) == 1

    async def test_an_unknown_or_foreign_message_is_200_and_nothing_recorded(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            unknown = event("failed-permanent", None)
            unknown["user-variables"]["postroom_message_id"] = "mail_msg_01JDNOSUCHMESSAGE00000"
            response = await send(sent, signed(h, unknown))
            assert response.status_code == 200, response.text

            other = await make_org(h.sessionmaker, "intruder")
            theirs = await h.client.post(
                "/service-credentials/mailgun",
                json=credential(webhookSigningKey="their-key"),
                headers={"REB-APIKEY": other.api_key},
            )
            assert theirs.status_code == 201, theirs.text
            foreign = signed(h, event("failed-permanent", sent), key="their-key")
            response = await send(sent, foreign, url=theirs.json()["eventsUrl"])
            assert response.status_code == 200, response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []


class TestRefused:
    @pytest.mark.parametrize(
        "case", ["tampered signature", "wrong key", "stale", "future", "no signature"]
    )
    async def test_a_request_not_signed_now_with_the_key_is_403_and_records_nothing(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer, case: str
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            now = int(h.clock.now().timestamp())
            data = event("failed-permanent", sent)
            if case == "wrong key":
                request = signed(h, data, key="another-key")
            elif case in ("stale", "future"):
                request = signed(h, data, timestamp=now - 301 if case == "stale" else now + 301)
            elif case == "no signature":
                request = {"event-data": data}
            else:
                request = signed(h, data)
            if case == "tampered signature":
                # A captured request's signature with another timestamp (to dodge the tolerance).
                request["signature"]["timestamp"] = str(now + 1)
            response = await send(sent, request)
            assert response.status_code == 403, response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []

    async def test_a_replayed_token_is_403_and_records_nothing(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            first = signed(h, event("delivered", sent))
            assert (await send(sent, first)).status_code == 200
            # The same signature block (well within the tolerance) on another event.
            replay = {**first, "event-data": event("failed-permanent", sent)}
            response = await send(sent, replay)
            assert response.status_code == 403, response.text
            assert kinds(await events_of(h, sent.message_id)) == [("delivered", None)]
            assert await blocklisted(h, sent.organization_id) == []

    async def test_a_refused_request_does_not_use_up_its_token(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            request = signed(h, event("delivered", sent))
            wrong = {**request, "signature": {**request["signature"], "signature": "0" * 64}}
            assert (await send(sent, wrong)).status_code == 403
            assert (await send(sent, request)).status_code == 200

    async def test_a_credential_without_a_signing_key_refuses_everything(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            created = await h.client.post(
                "/service-credentials/mailgun", json=credential(webhookSigningKey=None)
            )
            assert created.status_code == 201, created.text
            assert "webhookSigningKey" not in created.json()
            sent = Sent(created.json(), "mail_msg_01JDNOSUCHMESSAGE00000", "")
            response = await send(sent, signed(h, event("delivered", None), key=""))
            assert response.status_code == 403, response.text
            assert "webhookSigningKey" in response.json()["detail"]

    async def test_odd_bodies_are_refused_or_read_carefully(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            assert (await post(sent.events_url, b"\x00not json")).status_code == 400
            assert (await post(sent.events_url, b"[1, 2]")).status_code == 403
            odd = event(
                "failed-permanent", sent, timestamp="later", recipient="not an address", id=[1]
            )
            odd["delivery-status"] = {"message": "a\x00b", "code": {"x": 1}}
            response = await send(sent, signed(h, odd))
            assert response.status_code == 200, response.text
            [bounced] = await events_of(h, sent.message_id)
            assert bounced["recipient"] is None and bounced["diagnostic"] == "a\ufffdb"


class TestCredential:
    async def test_the_signing_key_is_never_shown_and_can_be_replaced_or_removed(
        self, harness_factory: HarnessFactory, mailgun: MailgunServer
    ) -> None:
        async with harness_factory(providers={"mailgun_url": mailgun.url}) as h:
            sent = await sent_message(h)
            assert SIGNING_KEY not in json.dumps(sent.credential)
            url = f"/service-credentials/mailgun/{sent.credential['id']}"
            shown = await h.client.get(url)
            assert SIGNING_KEY not in shown.text
            patched = await h.client.patch(url, json={"webhookSigningKey": "rotated-key"})
            assert patched.status_code == 200, patched.text
            assert "rotated-key" not in patched.text
            old = await send(sent, signed(h, event("delivered", sent)))
            assert old.status_code == 403
            new = await send(sent, signed(h, event("delivered", sent), key="rotated-key"))
            assert new.status_code == 200, new.text
            assert (await h.client.patch(url, json={"webhookSigningKey": None})).status_code == 200
            removed = await send(sent, signed(h, event("complained", sent), key="rotated-key"))
            assert removed.status_code == 403
