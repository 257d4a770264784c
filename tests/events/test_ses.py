"""POST /inbound/{credentialId}/{tag} for an aws-ses credential: SES events in SNS messages.

The SES records are AWS's own examples (fixtures/ses: "Examples of event data that Amazon SES
publishes to Amazon SNS", and "Amazon SNS notification examples for Amazon SES" for the older
`notificationType` shape), pointed at the test's message. They travel in SNS messages signed
with a key the test made, whose certificate an SNS look-alike (tests/servers/sns.py) serves
over https as "localhost": the app under test allows only that host and trusts the
look-alike's CA, as it would allow sns.<region>.amazonaws.com and trust the system's CAs."""

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.app import create_app
from postroom.blocklists import service as blocklists
from postroom.core.clock import ManualClock
from postroom.core.ids import new_id
from postroom.delivery.models import DeliveryAttempt
from postroom.settings import EventSettings
from postroom.webhooks.models import WebhookEvent
from tests.conftest import make_settings
from tests.factories import make_message, make_org
from tests.servers.http import serve_in_thread
from tests.servers.sns import (
    SnsServer,
    new_rsa_key,
    notification,
    sign,
    sns_server,
    subscription_confirmation,
)
from tests.webhooks.test_api import make_webhook

FIXTURES = Path(__file__).parent / "fixtures" / "ses"
RECIPIENT = "recipient@example.com"


def ses_record(name: str, **mail: Any) -> dict[str, Any]:
    """The fixture `name` with its `mail` object's fields replaced by `mail`."""
    record: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    record["mail"].update(mail)
    return record


def tagged(name: str, message_id: str) -> dict[str, Any]:
    """The fixture as SES publishes it for the message postroom sent (its id in the tags)."""
    record = ses_record(name)
    record["mail"]["tags"]["postroom_message_id"] = [message_id]
    return record


@dataclass
class SesApp:
    url: str
    clock: ManualClock


@pytest.fixture(scope="module")
def sns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnsServer]:
    with sns_server(tmp_path_factory.mktemp("sns")) as server:
        yield server


@pytest.fixture(scope="module")
def ses_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, sns: SnsServer
) -> Iterator[SesApp]:
    clock = ManualClock()
    settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("ses"),
        events=EventSettings(sns_certificate_hosts=r"^localhost$", sns_ca_file=sns.ca_file),
    )
    with serve_in_thread(create_app(settings, clock=clock)) as url:
        yield SesApp(url, clock)


@dataclass
class Tenant:
    organization_id: str
    client: httpx.AsyncClient
    credential_id: str
    events_url: str
    app: SesApp
    sns: SnsServer
    sessionmaker: async_sessionmaker[AsyncSession]

    async def post(self, message: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as anonymous:
            return await anonymous.post(
                self.events_url,
                content=json.dumps(message).encode(),
                headers={
                    "x-amz-sns-message-type": message["Type"],
                    "content-type": "text/plain; charset=UTF-8",
                },
            )

    def signed(self, record: dict[str, Any], *, version: str = "2") -> dict[str, str]:
        return sign(
            notification(record, self.app.clock.now()),
            self.sns.key,
            self.sns.certificate_url,
            version=version,
        )

    async def events(self, message_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/email-messages/{message_id}/events")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    async def webhook_events(self) -> list[WebhookEvent]:
        async with self.sessionmaker() as session:
            found = await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.organization_id == self.organization_id)
                .order_by(WebhookEvent.id)
            )
            return list(found.all())

    async def blocked(self, *addresses: str) -> set[str]:
        async with self.sessionmaker() as session:
            return await blocklists.blocked(
                session, self.organization_id, addresses, self.app.clock.now()
            )


@pytest.fixture
async def tenant(
    ses_app: SesApp, sns: SnsServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Tenant]:
    organization = await make_org(sessionmaker, "ses")
    async with httpx.AsyncClient(
        base_url=ses_app.url, headers={"REB-APIKEY": organization.api_key}, timeout=30
    ) as client:
        created = await client.post(
            "/service-credentials/aws-ses",
            json={"key": "AKIAIOSFODNN7EXAMPLE", "secret": "s", "region": "us-east-1"},
        )
        assert created.status_code == 201, created.text
        credential = created.json()
        await make_webhook(client, eventsFilter=[])
        yield Tenant(
            organization.organization_id,
            client,
            credential["id"],
            credential["eventsUrl"],
            ses_app,
            sns,
            sessionmaker,
        )


async def _message_id(tenant: Tenant, **overrides: Any) -> str:
    created = await make_message(tenant.client, **overrides)
    message_id: str = created["id"]
    return message_id


class TestEvents:
    async def test_a_delivery_is_delivered_on_the_tagged_message_and_fires_its_webhook(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("delivery", message_id))
        response = await tenant.post(message)
        assert response.status_code == 200, response.text
        [event] = await tenant.events(message_id)
        assert event["type"] == "delivered"
        assert event["source"] == "ses"
        assert event["recipient"] == RECIPIENT
        assert event["occurredTime"] == "2016-10-19T23:21:04Z"
        assert event["raw"]["delivery"]["smtpResponse"] == "250 2.6.0 Message received"
        [hook] = await tenant.webhook_events()
        assert (hook.type, hook.entity_id) == ("email-message-delivered", message_id)
        assert hook.payload["data"]["event"]["id"] == event["id"]

    async def test_a_permanent_bounce_is_hard_and_blocklists_the_recipient(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        response = await tenant.post(tenant.signed(tagged("bounce", message_id)))
        assert response.status_code == 200, response.text
        [event] = await tenant.events(message_id)
        assert event["type"] == "bounced"
        assert event["bounceType"] == "hard"
        assert event["diagnostic"] == "smtp; 550 5.1.1 user unknown"
        assert [h.type for h in await tenant.webhook_events()] == ["email-message-bounced"]
        assert await tenant.blocked(RECIPIENT, "other@example.com") == {RECIPIENT}

    @pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
    async def test_other_bounces_are_soft_and_do_not_blocklist_at_once(
        self, tenant: Tenant, bounce_type: str
    ) -> None:
        message_id = await _message_id(tenant)
        record = tagged("bounce", message_id)
        record["bounce"]["bounceType"] = bounce_type
        assert (await tenant.post(tenant.signed(record))).status_code == 200
        [event] = await tenant.events(message_id)
        assert event["bounceType"] == "soft"
        assert await tenant.blocked(RECIPIENT) == set()

    async def test_a_complaint_is_complained_and_blocklists_the_recipient(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        response = await tenant.post(tenant.signed(tagged("complaint", message_id)))
        assert response.status_code == 200, response.text
        [event] = await tenant.events(message_id)
        assert (event["type"], event["recipient"]) == ("complained", RECIPIENT)
        assert event["diagnostic"] == "abuse"
        assert [h.type for h in await tenant.webhook_events()] == ["email-message-complained"]
        assert await tenant.blocked(RECIPIENT) == {RECIPIENT}

    async def test_a_delivery_delay_is_deferred(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        response = await tenant.post(tenant.signed(tagged("delivery_delay", message_id)))
        assert response.status_code == 200, response.text
        [event] = await tenant.events(message_id)
        assert event["type"] == "deferred"
        assert event["diagnostic"] == "smtp; 421 4.4.1 Unable to connect to remote host"
        assert [h.type for h in await tenant.webhook_events()] == ["email-message-deferred"]
        assert await tenant.blocked(RECIPIENT) == set()

    async def test_an_identity_notification_finds_the_message_by_the_ses_message_id(
        self, tenant: Tenant
    ) -> None:
        # The older notifications carry no tags: only the id SES answered the send with.
        message_id = await _message_id(tenant, to=["jane@example.com", "mary@example.com"])
        ses_id = f"0000013811{new_id('')}-000000"
        async with tenant.sessionmaker() as session, session.begin():
            now = tenant.app.clock.now()
            session.add(
                DeliveryAttempt(
                    id=new_id("att_"),
                    message_id=message_id,
                    number=1,
                    transport="aws-ses",
                    credential_id=tenant.credential_id,
                    worker="test",
                    started_at=now,
                    outcome="sent",
                    finished_at=now,
                    provider_message_id=ses_id,
                )
            )
        record = ses_record("notification_bounce", messageId=ses_id)
        response = await tenant.post(tenant.signed(record, version="1"))
        assert response.status_code == 200, response.text
        [event] = await tenant.events(message_id)
        assert (event["type"], event["bounceType"]) == ("bounced", "hard")
        assert event["recipient"] == "jane@example.com"
        assert await tenant.blocked("jane@example.com", "mary@example.com") == {"jane@example.com"}

    async def test_each_bounced_recipient_is_an_event(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant, to=["a@example.com", "b@example.com"])
        record = tagged("bounce", message_id)
        record["bounce"]["bouncedRecipients"] = [
            {"emailAddress": "a@example.com", "diagnosticCode": "smtp; 550 5.1.1 no a"},
            {"emailAddress": "b@example.com", "status": "5.2.1"},
        ]
        assert (await tenant.post(tenant.signed(record))).status_code == 200
        events = await tenant.events(message_id)
        assert sorted((e["recipient"], e["diagnostic"]) for e in events) == [
            ("a@example.com", "smtp; 550 5.1.1 no a"),
            ("b@example.com", "5.2.1"),
        ]

    async def test_a_notification_sns_sends_again_is_recorded_once(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("delivery", message_id))
        assert (await tenant.post(message)).status_code == 200
        assert (await tenant.post(message)).status_code == 200
        assert len(await tenant.events(message_id)) == 1
        assert len(await tenant.webhook_events()) == 1

    async def test_a_send_event_and_a_message_that_is_no_ses_record_are_ignored(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        assert (await tenant.post(tenant.signed(tagged("send", message_id)))).status_code == 200
        hand_made = sign(
            {**notification({}, tenant.app.clock.now()), "Message": "hello", "Subject": "test"},
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        assert (await tenant.post(hand_made)).status_code == 200
        assert await tenant.events(message_id) == []

    async def test_an_event_for_an_unknown_message_answers_200_and_records_nothing(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        record = ses_record("bounce", messageId="not-ours")
        record["mail"]["tags"]["postroom_message_id"] = ["mail_msg_unknown"]
        assert (await tenant.post(tenant.signed(record))).status_code == 200
        assert await tenant.events(message_id) == []
        assert await tenant.blocked(RECIPIENT) == set()

    async def test_another_organizations_message_is_not_touched(
        self, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        other = await make_org(sessionmaker, "other")
        async with httpx.AsyncClient(
            base_url=tenant.app.url, headers={"REB-APIKEY": other.api_key}, timeout=30
        ) as other_client:
            theirs = (await make_message(other_client))["id"]
            assert (await tenant.post(tenant.signed(tagged("bounce", theirs)))).status_code == 200
            answer = await other_client.get(f"/email-messages/{theirs}/events")
            assert answer.json() == []


class TestRefused:
    """Nothing is recorded, and nothing fetched from a host the settings do not allow."""

    async def _refused(
        self, tenant: Tenant, message: dict[str, str], message_id: str, status: int = 403
    ) -> httpx.Response:
        response = await tenant.post(message)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert await tenant.events(message_id) == []
        assert await tenant.webhook_events() == []
        assert await tenant.blocked(RECIPIENT) == set()
        return response

    async def test_a_tampered_message_is_403(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("delivery", message_id))
        record = tagged("bounce", message_id)
        await self._refused(tenant, {**message, "Message": json.dumps(record)}, message_id)

    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_a_signature_by_another_key_is_403(self, tenant: Tenant, version: str) -> None:
        message_id = await _message_id(tenant)
        message = sign(
            notification(tagged("bounce", message_id), tenant.app.clock.now()),
            new_rsa_key(),
            tenant.sns.certificate_url,
            version=version,
        )
        response = await self._refused(tenant, message, message_id)
        assert "signature" in response.json()["detail"]

    async def test_a_v1_signature_presented_as_v2_is_403(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("bounce", message_id), version="1")
        await self._refused(tenant, {**message, "SignatureVersion": "2"}, message_id)

    @pytest.mark.parametrize(
        "certificate_url",
        [
            "http://localhost:{port}/SimpleNotificationService-plain.pem",
            "https://127.0.0.1:{port}/SimpleNotificationService-foreign.pem",
            "https://localhost.attacker.example:{port}/cert.pem",
            "https://user@localhost:{port}/cert.pem",
        ],
    )
    async def test_a_certificate_off_the_sns_hosts_is_not_fetched(
        self, tenant: Tenant, certificate_url: str
    ) -> None:
        message_id = await _message_id(tenant)
        port = tenant.sns.base_url.rsplit(":", 1)[1]
        url = certificate_url.format(port=port)
        message = sign(
            notification(tagged("bounce", message_id), tenant.app.clock.now()),
            tenant.sns.key,
            url,
        )
        before = tenant.sns.requests()
        response = await self._refused(tenant, message, message_id)
        assert "SigningCertURL" in response.json()["detail"]
        assert tenant.sns.requests() == before

    async def test_a_certificate_the_sns_host_does_not_serve_is_503_for_sns_to_retry(
        self, tenant: Tenant
    ) -> None:
        message_id = await _message_id(tenant)
        message = sign(
            notification(tagged("bounce", message_id), tenant.app.clock.now()),
            tenant.sns.key,
            tenant.sns.base_url + "/SimpleNotificationService-missing.pem",
        )
        await self._refused(tenant, message, message_id, status=503)
        assert len(tenant.sns.requests("/SimpleNotificationService-missing.pem")) == 1

    @pytest.mark.parametrize(
        "served",
        [
            b"-----BEGIN CERTIFICATE-----\n" + b"A" * 70_000 + b"\n-----END CERTIFICATE-----\n",
            b"not a certificate",
        ],
        ids=["too-large", "not-pem"],
    )
    async def test_a_certificate_that_is_none_is_403(self, tenant: Tenant, served: bytes) -> None:
        path = f"/SimpleNotificationService-{new_id('')}.pem"
        tenant.sns.files[path] = served
        message_id = await _message_id(tenant)
        message = sign(
            notification(tagged("bounce", message_id), tenant.app.clock.now()),
            tenant.sns.key,
            tenant.sns.base_url + path,
        )
        await self._refused(tenant, message, message_id)

    async def test_a_stale_timestamp_is_403(self, tenant: Tenant) -> None:
        # SNS retries a delivery with the message's first Timestamp for up to an hour.
        message_id = await _message_id(tenant)
        now = tenant.app.clock.now()
        almost = sign(
            notification(tagged("delivery", message_id), now - timedelta(minutes=59)),
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        assert (await tenant.post(almost)).status_code == 200
        stale_id = await _message_id(tenant)
        stale = sign(
            notification(tagged("bounce", stale_id), now - timedelta(hours=2)),
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        response = await tenant.post(stale)
        assert response.status_code == 403, response.text
        assert "Timestamp" in response.json()["detail"]
        assert await tenant.events(stale_id) == []
        assert await tenant.blocked(RECIPIENT) == set()

    async def test_a_timestamp_from_the_future_is_403(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        message = sign(
            notification(tagged("bounce", message_id), tenant.app.clock.now() + timedelta(hours=1)),
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        await self._refused(tenant, message, message_id)

    @pytest.mark.parametrize(
        "change",
        [
            {"SignatureVersion": "3"},
            {"Signature": "not base64!"},
            {"Signature": ""},
            {"MessageId": None},
        ],
    )
    async def test_a_message_that_cannot_be_verified_is_403(
        self, tenant: Tenant, change: dict[str, str | None]
    ) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("bounce", message_id))
        changed = {k: v for k, v in {**message, **change}.items() if v is not None}
        await self._refused(tenant, changed, message_id)

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[]",
            b'{"Type": "Other"}',
            b"\xff\xfe",
            b'{"Type": "\\u0000"}',
            b"[" * 100_000,
        ],
    )
    async def test_a_body_that_is_no_sns_message_is_400(self, tenant: Tenant, body: bytes) -> None:
        async with httpx.AsyncClient(timeout=30) as anonymous:
            response = await anonymous.post(tenant.events_url, content=body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_type_header_that_contradicts_the_body_is_400(self, tenant: Tenant) -> None:
        message_id = await _message_id(tenant)
        message = tenant.signed(tagged("bounce", message_id))
        async with httpx.AsyncClient(timeout=30) as anonymous:
            response = await anonymous.post(
                tenant.events_url,
                content=json.dumps(message).encode(),
                headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
            )
        assert response.status_code == 400, response.text
        assert await tenant.events(message_id) == []


class TestSubscription:
    async def test_a_confirmation_at_the_sns_host_is_fetched_once(self, tenant: Tenant) -> None:
        url = tenant.sns.subscribe_url()
        message = sign(
            subscription_confirmation(url, tenant.app.clock.now()),
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        before = len(tenant.sns.requests("/"))
        response = await tenant.post(message)
        assert response.status_code == 200, response.text
        confirmations = tenant.sns.requests("/")[before:]
        assert len(confirmations) == 1
        assert "Action=ConfirmSubscription" in confirmations[0].query

    @pytest.mark.parametrize(
        "base", ["https://127.0.0.1:{port}", "http://localhost:{port}", "https://evil.example"]
    )
    async def test_a_confirmation_naming_another_host_is_not_fetched(
        self, tenant: Tenant, base: str
    ) -> None:
        port = tenant.sns.base_url.rsplit(":", 1)[1]
        message = sign(
            subscription_confirmation(
                tenant.sns.subscribe_url(base.format(port=port)), tenant.app.clock.now()
            ),
            tenant.sns.key,
            tenant.sns.certificate_url,
        )
        before = tenant.sns.requests("/")
        response = await tenant.post(message)
        assert response.status_code == 403, response.text
        assert "SubscribeURL" in response.json()["detail"]
        assert tenant.sns.requests("/") == before

    async def test_a_forged_confirmation_is_not_fetched(self, tenant: Tenant) -> None:
        message = sign(
            subscription_confirmation(tenant.sns.subscribe_url(), tenant.app.clock.now()),
            new_rsa_key(),
            tenant.sns.certificate_url,
        )
        before = tenant.sns.requests("/")
        assert (await tenant.post(message)).status_code == 403
        assert tenant.sns.requests("/") == before

    async def test_an_unsubscribe_confirmation_is_verified_and_fetches_nothing(
        self, tenant: Tenant
    ) -> None:
        fields = {
            **subscription_confirmation(tenant.sns.subscribe_url(), tenant.app.clock.now()),
            "Type": "UnsubscribeConfirmation",
        }
        before = tenant.sns.requests("/")
        message = sign(fields, tenant.sns.key, tenant.sns.certificate_url)
        assert (await tenant.post(message)).status_code == 200
        forged = sign(fields, new_rsa_key(), tenant.sns.certificate_url)
        assert (await tenant.post(forged)).status_code == 403
        assert tenant.sns.requests("/") == before
