"""events/postmark.py through POST /inbound: Postmark's webhooks with the basic auth Postmark
sends from the URL it was given (`https://user:pass@host/...`), for a message the real worker
sent through the Postmark look-alike."""

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    provider_message_id,
    recorded_count,
    send_through,
    subscribe,
)
from tests.factories import make_org
from tests.harness import Harness, HarnessFactory
from tests.servers.esp import PostmarkServer, serving
from tests.servers.webhook_receiver import webhook_receiver

TOKEN = "dd0508z9-2291-6794-3376-z0a70g12eqm9"
USERNAME = "postmark-hook"
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def postmark() -> Iterator[PostmarkServer]:
    with serving(PostmarkServer(TOKEN)) as server:
        yield server


def with_auth(url: str, username: str, password: str) -> str:
    """The URL as one would paste it into Postmark's webhook settings."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{username}:{password}@{parts.netloc}"))


def record(name: str, sent: Sent | None, **values: Any) -> dict[str, Any]:
    """A fixture record about `sent`'s message (by postroom's id in Metadata)."""
    data = fixture("postmark", name)
    data["Email" if "Email" in data else "Recipient"] = RECIPIENT
    if sent is not None:
        data["Metadata"]["postroom_message_id"] = sent.message_id
    data.update(values)
    return data


async def send(
    url: str, data: Any, *, username: str = USERNAME, password: str = PASSWORD
) -> httpx.Response:
    """As Postmark sends it: httpx, like Postmark, turns the URL's user:pass into basic auth."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(with_auth(url, username, password), json=data)


async def sent_message(h: Harness, **overrides: Any) -> Sent:
    body = {"serverApiToken": TOKEN, "eventsUsername": USERNAME, "eventsPassword": PASSWORD}
    return await send_through(h, "postmark", {**body, **overrides})


class TestEvents:
    async def test_delivery_bounce_and_complaint_land_on_the_message_fire_webhooks_and_block(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        with webhook_receiver() as receiver:
            async with harness_factory(providers={"postmark_url": postmark.url}) as h:
                sent = await sent_message(h)
                await subscribe(h, receiver)
                for name in ("delivery", "open", "bounce-hard", "spam-complaint"):
                    response = await send(sent.events_url, record(name, sent))
                    assert response.status_code == 200, response.text
                events = await events_of(h, sent.message_id)
                by_type = {e["type"]: e for e in events}
                assert sorted(kinds(events)) == [
                    ("bounced", "hard"),
                    ("complained", None),
                    ("delivered", None),
                ]
                assert by_type["delivered"]["source"] == "postmark"
                assert by_type["delivered"]["recipient"] == RECIPIENT
                assert by_type["delivered"]["diagnostic"] == "Test delivery webhook details"
                assert by_type["delivered"]["occurredTime"].startswith("2026-12-04T12:45:07")
                # Seven fraction digits and an offset, as Postmark writes them.
                assert by_type["bounced"]["occurredTime"].startswith("2026-12-04T17:45:07")
                assert by_type["bounced"]["diagnostic"] == (
                    "Test bounce details — The server was unable to deliver your message "
                    "(ex: unknown user, mailbox not found)."
                )
                assert await blocklisted(h, sent.organization_id) == [RECIPIENT]
                assert sorted(await fired(h, receiver)) == sorted(
                    [
                        ("email-message-delivered", sent.message_id, "delivered"),
                        ("email-message-bounced", sent.message_id, "bounced"),
                        ("email-message-complained", sent.message_id, "complained"),
                    ]
                )

    @pytest.mark.parametrize(
        ("type_", "expected"),
        [
            ("SoftBounce", ("bounced", "soft")),
            ("Transient", ("deferred", None)),
            ("DnsError", ("bounced", "soft")),
            ("BadEmailAddress", ("bounced", "hard")),
            ("AutoResponder", None),
        ],
    )
    async def test_bounce_types_are_read_as_postmark_documents_them(
        self,
        harness_factory: HarnessFactory,
        postmark: PostmarkServer,
        type_: str,
        expected: tuple[str, str | None] | None,
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            response = await send(sent.events_url, record("bounce-soft", sent, Type=type_))
            assert response.status_code == 200, response.text
            events = await events_of(h, sent.message_id)
            assert kinds(events) == ([expected] if expected else [])
            blocked = [RECIPIENT] if expected == ("bounced", "hard") else []
            assert await blocklisted(h, sent.organization_id) == blocked

    async def test_found_by_postmarks_message_id_without_metadata(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            bounce = record("bounce-hard", None)
            bounce["MessageID"] = await provider_message_id(h, sent.message_id)
            response = await send(sent.events_url, bounce)
            assert response.status_code == 200, response.text
            assert kinds(await events_of(h, sent.message_id)) == [("bounced", "hard")]

    async def test_the_same_record_sent_twice_is_recorded_once(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            for name in ("delivery", "delivery", "bounce-hard", "bounce-hard"):
                response = await send(sent.events_url, record(name, sent))
                assert response.status_code == 200, response.text
            assert sorted(kinds(await events_of(h, sent.message_id))) == [
                ("bounced", "hard"),
                ("delivered", None),
            ]

    async def test_an_unknown_or_foreign_message_is_200_and_nothing_recorded(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            unknown = record("bounce-hard", None, MessageID="not-a-known-id")
            unknown["Metadata"]["postroom_message_id"] = "mail_msg_01JDNOSUCHMESSAGE00000"
            response = await send(sent.events_url, unknown)
            assert response.status_code == 200, response.text

            other = await make_org(h.sessionmaker, "intruder")
            theirs = await h.client.post(
                "/service-credentials/postmark",
                json={"serverApiToken": "t", "eventsUsername": "them", "eventsPassword": "theirs"},
                headers={"REB-APIKEY": other.api_key},
            )
            assert theirs.status_code == 201, theirs.text
            response = await send(
                theirs.json()["eventsUrl"],
                record("bounce-hard", sent),
                username="them",
                password="theirs",
            )
            assert response.status_code == 200, response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []


class TestRefused:
    @pytest.mark.parametrize(
        ("username", "password"),
        [(USERNAME, "wrong"), ("someone", PASSWORD), (USERNAME, PASSWORD + "x"), ("", "")],
    )
    async def test_wrong_or_missing_basic_auth_is_401_asking_for_basic_and_records_nothing(
        self,
        harness_factory: HarnessFactory,
        postmark: PostmarkServer,
        username: str,
        password: str,
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            data = record("bounce-hard", sent)
            if username:
                response = await send(sent.events_url, data, username=username, password=password)
            else:
                async with httpx.AsyncClient(timeout=30) as http:
                    response = await http.post(sent.events_url, json=data)
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Basic ")
            assert PASSWORD not in response.text
            assert await recorded_count(h) == 0
            assert await blocklisted(h, sent.organization_id) == []

    async def test_a_credential_without_events_auth_refuses_everything(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await send_through(h, "postmark", {"serverApiToken": TOKEN})
            assert "eventsUsername" not in sent.credential
            response = await send(sent.events_url, record("bounce-hard", sent))
            assert response.status_code == 403, response.text
            assert await recorded_count(h) == 0

    async def test_odd_bodies_are_refused_or_read_carefully(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            for body in ([1, 2], "text"):
                assert (await send(sent.events_url, body)).status_code == 400
            odd = record(
                "bounce-hard", sent, BouncedAt="yesterday", Email=["x"], ID=None, Details="a\x00"
            )
            response = await send(sent.events_url, odd)
            assert response.status_code == 200, response.text
            [bounced] = await events_of(h, sent.message_id)
            assert bounced["recipient"] is None
            assert bounced["diagnostic"].startswith("a\ufffd")


class TestCredential:
    async def test_the_username_is_shown_the_password_never_and_both_are_patchable(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            assert sent.credential["eventsUsername"] == USERNAME
            assert PASSWORD not in json.dumps(sent.credential)
            url = f"/service-credentials/postmark/{sent.credential['id']}"
            patched = await h.client.patch(url, json={"eventsPassword": "new-password"})
            assert patched.status_code == 200, patched.text
            assert "new-password" not in patched.text
            data = record("delivery", sent)
            assert (await send(sent.events_url, data)).status_code == 401
            assert (await send(sent.events_url, data, password="new-password")).status_code == 200
            removed = await h.client.patch(
                url, json={"eventsUsername": None, "eventsPassword": None}
            )
            assert removed.status_code == 200, removed.text
            assert "eventsUsername" not in removed.json()
            assert (await send(sent.events_url, data, password="new-password")).status_code == 403

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"eventsUsername": "only-the-user"}, "eventsPassword"),
            ({"eventsPassword": "only-the-password"}, "eventsUsername"),
            ({"eventsUsername": "a:b", "eventsPassword": "p"}, "eventsUsername"),
        ],
    )
    async def test_half_an_events_login_or_a_colon_in_the_username_is_422(
        self,
        harness_factory: HarnessFactory,
        postmark: PostmarkServer,
        body: dict[str, str],
        field: str,
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            created = await h.client.post(
                "/service-credentials/postmark", json={"serverApiToken": TOKEN, **body}
            )
            assert created.status_code == 422, created.text
            assert [p["field"] for p in created.json()["invalidFields"]] == [field]

    async def test_a_patch_that_leaves_half_an_events_login_is_422(
        self, harness_factory: HarnessFactory, postmark: PostmarkServer
    ) -> None:
        async with harness_factory(providers={"postmark_url": postmark.url}) as h:
            sent = await sent_message(h)
            url = f"/service-credentials/postmark/{sent.credential['id']}"
            patched = await h.client.patch(url, json={"eventsPassword": None})
            assert patched.status_code == 422, patched.text
            assert [p["field"] for p in patched.json()["invalidFields"]] == ["eventsPassword"]
