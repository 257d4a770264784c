"""One-click unsubscribe (RFC 8058): a message's own URL, or postroom's hosted link, goes out as
List-Unsubscribe with List-Unsubscribe-Post; the hosted link's POST blocklists the recipient and
fires email-message-unsubscribed, its GET does not, and a forged link is 404."""

from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from postroom.webhooks.models import WebhookEvent
from tests.factories import make_message, message_body
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server
from tests.webhooks.test_api import make_webhook

ONE_CLICK = "List-Unsubscribe=One-Click"


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"unsubscribeUrl": "http://example.com/u"}, "unsubscribeUrl"),
            ({"unsubscribeUrl": "https://example.com/a b"}, "unsubscribeUrl"),
            ({"unsubscribeUrl": "https://example.com/>x"}, "unsubscribeUrl"),
            (
                {"unsubscribeUrl": "https://example.com/u", "hostedUnsubscribe": True},
                "hostedUnsubscribe",
            ),
            ({"hostedUnsubscribe": True, "cc": ["b@example.com"]}, "hostedUnsubscribe"),
        ],
    )
    async def test_bad_unsubscribe_fields_are_422(
        self, client: httpx.AsyncClient, body: dict[str, object], field: str
    ) -> None:
        response = await client.post("/email-messages", json=message_body(**body))
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["invalidFields"]] == [field]

    async def test_they_are_shown(self, client: httpx.AsyncClient) -> None:
        own = await make_message(client, unsubscribeUrl="https://example.com/u?id=1")
        assert (own["unsubscribeUrl"], own["hostedUnsubscribe"]) == (
            "https://example.com/u?id=1",
            False,
        )
        hosted = await make_message(client, hostedUnsubscribe=True)
        assert (hosted["unsubscribeUrl"], hosted["hostedUnsubscribe"]) == (None, True)


class TestHeaders:
    async def test_the_messages_own_url_goes_out_with_one_click(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                await make_message(
                    h.client, status="outbox", unsubscribeUrl="https://example.com/u?id=1"
                )
                await h.deliver()
                [received] = smtp.received
                assert received.message["List-Unsubscribe"] == "<https://example.com/u?id=1>"
                assert received.message["List-Unsubscribe-Post"] == ONE_CLICK


class TestHosted:
    async def test_the_one_click_post_blocklists_the_recipient_and_the_next_message_is_suppressed(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
                await make_webhook(h.client, eventsFilter=["email-message-unsubscribed"])
                created = await make_message(
                    h.client, status="outbox", to=["reader@example.com"], hostedUnsubscribe=True
                )
                await h.deliver()
                [received] = smtp.received
                assert received.message["List-Unsubscribe-Post"] == ONE_CLICK
                link = str(received.message["List-Unsubscribe"]).strip("<>")
                path = urlsplit(link).path
                assert path.startswith(f"/unsubscribe/{created['id']}/")

                async with httpx.AsyncClient(base_url=str(h.client.base_url)) as anyone:
                    # A link checker's GET shows a page and changes nothing.
                    page = await anyone.get(path)
                    assert page.status_code == 200
                    assert "reader@example.com" in page.text and "<form" in page.text
                    assert "default-src 'none'" in page.headers["content-security-policy"]
                    assert (await h.client.get("/blocklists")).json() == []
                    # A forged link is 404, and so is another message's tag.
                    forged = path[:-1] + ("a" if path[-1] != "a" else "b")
                    assert (await anyone.post(forged, content=ONE_CLICK)).status_code == 404
                    other = await make_message(h.client, hostedUnsubscribe=True)
                    wrong = f"/unsubscribe/{other['id']}/{path.rsplit('/', 1)[1]}"
                    assert (await anyone.post(wrong, content=ONE_CLICK)).status_code == 404

                    form = {"content-type": "application/x-www-form-urlencoded"}
                    for _ in range(2):  # a second click changes nothing
                        done = await anyone.post(path, content=ONE_CLICK, headers=form)
                        assert done.status_code == 200, done.text

                [entry] = (await h.client.get("/blocklists")).json()
                assert (entry["type"], entry["value"], entry["entityId"]) == (
                    "email",
                    "reader@example.com",
                    created["id"],
                )
                assert entry["expirationTime"] is None
                events = (await h.client.get(f"/email-messages/{created['id']}/events")).json()
                assert [(e["type"], e["source"], e["recipient"]) for e in events] == [
                    ("unsubscribed", "unsubscribe", "reader@example.com")
                ]
                async with h.sessionmaker() as session:
                    fired = (await session.scalars(select(WebhookEvent))).all()
                assert [e.type for e in fired] == ["email-message-unsubscribed"]

                second = await make_message(h.client, status="outbox", to=["reader@example.com"])
                await h.deliver()
                assert len(smtp.received) == 1
                [attempt] = await h.attempts(second["id"])
                assert attempt["outcome"] == "suppressed"
