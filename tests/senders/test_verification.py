"""Senders are verified by a link mailed to their address (senders/verification.py), or by the
operator's CLI; and the server-wide transport sends only from a verified setting or a domain the
operator allows. The server-wide transport here is a real SMTP server on loopback."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from postroom.auth import service as auth
from postroom.errors import NotFound
from postroom.settings import Settings
from tests.factories import make_message, message_body
from tests.harness import Harness, HarnessFactory
from tests.servers.smtp import SmtpServer, smtp_server


@asynccontextmanager
async def operator_mail(
    harness_factory: HarnessFactory, **senders: Any
) -> AsyncIterator[tuple[Harness, SmtpServer]]:
    """A harness whose server-wide transport is a real SMTP server."""
    with smtp_server() as smtp:
        async with harness_factory(
            smtp_url=f"smtp://127.0.0.1:{smtp.port}",
            senders={"verification_from": "verify@postroom.test", **senders},
        ) as h:
            yield h, smtp


async def create_setting(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/email-delivery-settings", json={"from": "billing@example.org", "name": "Acme", **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def mailed_link(h: Harness, smtp: SmtpServer, address: str) -> str:
    """The verification link in the last mail the worker delivered to `address`."""
    await h.deliver()
    mails = [r for r in smtp.received if r.rcpt_tos == [address]]
    assert mails, [r.rcpt_tos for r in smtp.received]
    mail = mails[-1]
    assert mail.mail_from == "verify@postroom.test"
    body = mail.message.get_body(("plain",))
    assert body is not None
    found = re.search(
        r"^(http\S+/email-delivery-setting-verifications/\S+)$", body.get_content(), re.M
    )
    assert found is not None, body.get_content()
    return found.group(1)


class TestTokenFlow:
    async def test_the_mailed_link_verifies_the_setting_once(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory) as (h, smtp):
            created = await create_setting(h.client)
            assert created["status"] == "pending"
            link = await mailed_link(h, smtp, "billing@example.org")
            path = urlsplit(link).path
            assert link.startswith(str(h.client.base_url).rstrip("/"))
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                # Opening the link (a mail scanner does) shows a button and verifies nothing.
                page = await anonymous.get(path)
                assert page.status_code == 200
                assert "billing@example.org" in page.text and "<form" in page.text
                assert "default-src 'none'" in page.headers["content-security-policy"]
                setting_url = f"/email-delivery-settings/{created['id']}"
                assert (await h.client.get(setting_url)).json()["status"] == "pending"
                # Rebilly's operation: PUT, no API key.
                verified = await anonymous.put(path)
                assert verified.status_code == 200, verified.text
                assert (verified.json()["id"], verified.json()["status"]) == (
                    created["id"],
                    "verified",
                )
                again = await anonymous.put(path)
                assert again.status_code == 404
                assert again.headers["content-type"] == "application/problem+json"
                assert (await anonymous.get(path)).status_code == 404
            assert (await h.client.get(setting_url)).json()["status"] == "verified"
            # Now the server-wide transport sends as it.
            message = await make_message(
                h.client, status="outbox", **{"from": "billing@example.org"}
            )
            await h.deliver()
            assert (await h.message(message["id"]))["status"] == "sent"

    async def test_the_button_on_the_page_verifies(self, harness_factory: HarnessFactory) -> None:
        async with operator_mail(harness_factory) as (h, smtp):
            created = await create_setting(h.client)
            path = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                confirmed = await anonymous.post(path)
            assert confirmed.status_code == 200
            assert "is verified" in confirmed.text
            setting = (await h.client.get(f"/email-delivery-settings/{created['id']}")).json()
            assert setting["status"] == "verified"

    async def test_the_mail_is_not_the_tenants_to_read(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory) as (h, _):
            await create_setting(h.client)
            listed = (await h.client.get("/email-messages")).json()
            assert listed == []  # the mail is postroom's own, in no tenant's organization
            async with h.sessionmaker() as session, session.begin():
                with pytest.raises(NotFound):
                    await auth.create_api_key(session, auth.SYSTEM_ORGANIZATION_ID, h.clock.now())

    async def test_a_link_expires_and_a_resend_replaces_it(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory, verification_token_hours=1) as (h, smtp):
            created = await create_setting(h.client)
            first = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
            resend_url = f"/email-delivery-settings/{created['id']}/resend-email-verification"
            resent = await h.client.post(resend_url)
            assert (resent.status_code, resent.json()["status"]) == (200, "pending")
            second = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
            assert second != first
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                assert (await anonymous.put(first)).status_code == 404  # replaced
                h.clock.advance(timedelta(hours=1, seconds=1))
                assert (await anonymous.put(second)).status_code == 404  # expired
                third_response = await h.client.post(resend_url)
                assert third_response.status_code == 200
                third = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
                assert (await anonymous.put(third)).status_code == 200
            refused = await h.client.post(resend_url)
            assert refused.status_code == 409
            assert "already verified" in refused.json()["detail"]

    async def test_a_changed_address_is_pending_and_gets_its_own_link(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory) as (h, smtp):
            created = await create_setting(h.client)
            path = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                assert (await anonymous.put(path)).status_code == 200
            moved = await h.client.patch(
                f"/email-delivery-settings/{created['id']}", json={"from": "sales@example.org"}
            )
            assert moved.json()["status"] == "pending"
            link = await mailed_link(h, smtp, "sales@example.org")
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                assert (await anonymous.put(urlsplit(link).path)).status_code == 200

    async def test_the_link_uses_the_public_url_setting(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory, public_url="https://mail.example.net/") as (
            h,
            smtp,
        ):
            await create_setting(h.client)
            link = await mailed_link(h, smtp, "billing@example.org")
            assert link.startswith("https://mail.example.net/email-delivery-setting-verifications/")


class TestServerTransportSenders:
    async def test_an_unverified_from_is_422_naming_from(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory, allowed_domains="example.com") as (h, _):
            for status in ("outbox", "draft"):
                response = await h.client.post(
                    "/email-messages",
                    json=message_body(status=status, **{"from": "ceo@example.org"}),
                )
                assert response.status_code == 422, response.text
                [problem] = response.json()["invalidFields"]
                assert problem["field"] == "from"
                assert "verified" in problem["message"]
            await create_setting(h.client, **{"from": "ceo@example.org"})  # pending
            response = await h.client.post(
                "/email-messages", json=message_body(**{"from": "ceo@example.org"})
            )
            assert response.status_code == 422

    async def test_an_allowed_domain_and_its_subdomains_need_no_setting(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory, allowed_domains="example.com") as (h, smtp):
            for sender in ("a@example.com", "b@mail.example.com"):
                await make_message(h.client, status="outbox", **{"from": sender})
            refused = await h.client.post(
                "/email-messages", json=message_body(**{"from": "c@badexample.com"})
            )
            assert refused.status_code == 422
            await h.deliver()
            assert sorted(r.mail_from for r in smtp.received) == [
                "a@example.com",
                "b@mail.example.com",
            ]

    async def test_a_draft_is_checked_again_when_it_is_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with operator_mail(harness_factory) as (h, smtp):
            setting = await create_setting(h.client)
            path = urlsplit(await mailed_link(h, smtp, "billing@example.org")).path
            async with httpx.AsyncClient(base_url=h.client.base_url) as anonymous:
                assert (await anonymous.put(path)).status_code == 200
            draft = await make_message(h.client, **{"from": "billing@example.org"})
            await h.client.delete(f"/email-delivery-settings/{setting['id']}")
            response = await h.client.patch(
                f"/email-messages/{draft['id']}", json={"status": "outbox"}
            )
            assert response.status_code == 422
            assert response.json()["invalidFields"][0]["field"] == "from"

    def test_unset_domains_allow_any_only_while_nothing_leaves_the_machine(self) -> None:
        assert Settings(smtp_url=None).server_transport_domains() == ("*",)
        assert Settings(smtp_url="smtp://relay.example.com").server_transport_domains() == ()
        configured = Settings(
            smtp_url="smtp://relay.example.com",
            senders={"allowed_domains": " Example.COM., shop.example.net "},
        )
        assert configured.server_transport_domains() == ("example.com", "shop.example.net")
