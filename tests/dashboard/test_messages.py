"""The messages pages in a real Chromium: search, a message as its recipient saw it (and
nothing in it runs), its source and attachments, 404 across organizations, the actions."""

import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from playwright.async_api import ConsoleMessage, Dialog, Page, Request

from tests.dashboard.conftest import Site, assert_accessible, screenshot
from tests.factories import make_message, png_bytes, upload_file


async def _delivered(site: Site, **fields: Any) -> dict[str, Any]:
    created = await make_message(site.harness.client, status="outbox", **fields)
    await site.harness.deliver()
    return created


async def _open(page: Page, site: Site, message_id: str, query: str = "") -> None:
    response = await page.goto(f"{site.url}/dashboard/messages/{message_id}{query}")
    assert response is not None
    assert response.status == 200, await response.text()


class TestMessages:
    async def test_search_by_recipient_and_by_subject(self, page: Page, site: Site) -> None:
        one = await _delivered(site, to=["ada.search@example.com"], subject="Invoice quokka-1")
        site.harness.clock.advance(timedelta(seconds=1))
        two = await _delivered(site, to=["bob.search@example.com"], subject="Receipt wombat-2")

        await page.get_by_label("Search (recipient, sender, subject)").fill("ada.search")
        await page.get_by_role("button", name="Search").click()
        rows = page.locator("table.messages tbody tr")
        await page.wait_for_url(re.compile(r".*q=ada\.search.*"))
        assert await rows.count() == 1
        assert "Invoice quokka-1" in await rows.first.inner_text()

        await page.get_by_label("Search (recipient, sender, subject)").fill(".search@")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_url(re.compile(r".*q=\.search%40.*sort=newest.*"))
        assert [await r.locator("td").nth(2).inner_text() for r in await rows.all()] == [
            "Receipt wombat-2",
            "Invoice quokka-1",
        ]
        await page.get_by_label("Order").select_option("oldest")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_url(re.compile(r".*sort=oldest.*"))
        assert await rows.first.locator("td").nth(2).inner_text() == "Invoice quokka-1"

        await page.get_by_label("Search (recipient, sender, subject)").fill("wombat-2")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_url(re.compile(r".*q=wombat-2.*"))
        assert await rows.count() == 1
        await rows.first.get_by_role("link").click()
        await page.wait_for_url(re.compile(rf".*/dashboard/messages/{two['id']}$"))
        assert one["id"] not in page.url
        await assert_accessible(page)
        await page.goto(f"{site.url}/dashboard/messages?status=sent")
        await assert_accessible(page)
        await screenshot(page, "messages")

    async def test_a_message_page_shows_the_rendered_html_and_every_attempt(
        self, page: Page, site: Site
    ) -> None:
        created = await _delivered(
            site, subject="Rendered", html="<h1>Hello <em>reader</em></h1><p>Your order</p>"
        )
        await _open(page, site, created["id"])
        frame = page.frame_locator("iframe.preview")
        await frame.get_by_role("heading", name="Hello reader").wait_for()
        timeline = await page.locator("ol.timeline").inner_text()
        assert "attempt 1 via smtp: sent" in timeline
        assert "sent" in await page.locator(".status").first.inner_text()
        await screenshot(page, "message")
        await assert_accessible(page)

    async def test_the_html_part_runs_no_script_submits_no_form_and_loads_nothing(
        self, page: Page, site: Site
    ) -> None:
        images = site.images
        hostile = (
            "<p>Hostile</p><script>console.log('script ran'); alert(1)</script>"
            f'<img src="{images.url}/pixel.png?onerror" onerror="alert(2)" alt="x">'
            '<img src="nowhere.png" onerror="console.log(\'onerror ran\')" alt="y">'
            f'<form action="{images.url}/pixel.png" method="get"><input name="leak" value="1">'
            '<button type="submit">Submit</button></form>'
        )
        created = await _delivered(site, subject="Hostile", html=hostile)
        dialogs: list[str] = []
        console: list[str] = []
        outside: list[str] = []

        async def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            console.append(message.text)

        def on_response(request: Request) -> None:
            if not request.url.startswith(site.url):
                outside.append(request.url)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        # Chromium reports a request the CSP blocked as started, then failed; none may get
        # an answer (and the server below must see none).
        page.context.on("requestfinished", on_response)
        await _open(page, site, created["id"])
        frame = page.frame_locator("iframe.preview")
        await frame.get_by_text("Hostile").wait_for()
        await frame.get_by_role("button", name="Submit").click()
        await page.wait_for_timeout(300)  # a submitted form would navigate the frame by now

        assert dialogs == []
        assert not [c for c in console if "ran" in c]
        assert outside == []
        assert images.requests == []
        assert await frame.get_by_text("Hostile").is_visible()

    async def test_remote_images_load_only_after_the_click(self, page: Page, site: Site) -> None:
        images = site.images
        images.requests.clear()
        url = f"{images.url}/pixel.png?tracking=1"
        created = await _delivered(site, html=f'<p>Logo</p><img src="{url}" alt="logo">')
        fetched: list[str] = []
        page.context.on(
            "requestfinished", lambda r: fetched.append(r.url) if "tracking=1" in r.url else None
        )

        await _open(page, site, created["id"])
        frame = page.frame_locator("iframe.preview")
        await frame.get_by_text("Logo").wait_for()
        assert fetched == []
        assert images.requests == []

        await page.get_by_role("link", name="Load remote images").click()
        await page.wait_for_url(re.compile(r".*images=true$"))
        image = page.frame_locator("iframe.preview").get_by_role("img", name="logo")
        await image.wait_for()
        await image.evaluate("img => img.decode()")
        assert fetched == [url]
        assert len(images.requests) == 1

    async def test_the_source_downloads_as_an_eml_the_email_package_parses(
        self, page: Page, site: Site, tmp_path: Path
    ) -> None:
        created = await _delivered(
            site,
            subject="Source ✓",
            text="Plain words",
            html="<p>Rich words</p>",
            replyTo=["help@example.com"],
            headers={"X-Campaign": "spring"},
        )
        await _open(page, site, created["id"])
        envelope = await page.locator("dl.envelope").inner_text()
        assert "help@example.com" in envelope and "X-Campaign" in envelope
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name="Download source (.eml)").click()
        download = await waiting.value
        assert download.suggested_filename == f"{created['id']}.eml"
        saved = tmp_path / "message.eml"
        await download.save_as(saved)
        parsed = message_from_bytes(saved.read_bytes(), policy=policy.default)
        assert parsed["Subject"] == "Source ✓"
        assert parsed["To"] == "recipient@example.com"
        assert parsed["Reply-To"] == "help@example.com"
        assert parsed["X-Campaign"] == "spring"
        text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().strip() == "Plain words"
        assert "<p>Rich words</p>" in html.get_content()
        # The same bytes the SMTP sink got, but for the headers a send adds on the way.
        [received] = [r for r in site.smtp.received if r.message["Subject"] == "Source ✓"]
        assert received.message["Message-ID"] == parsed["Message-ID"]

    async def test_another_organizations_message_is_404(self, page: Page, site: Site) -> None:
        theirs = (await make_message(site.other, subject="theirs"))["id"]
        for path in ("", "/preview", "/source.eml"):
            answer = await page.goto(f"{site.url}/dashboard/messages/{theirs}{path}")
            assert answer is not None
            assert answer.status == 404, path


class TestActions:
    async def test_a_form_posted_without_its_csrf_token_is_refused(
        self, page: Page, site: Site
    ) -> None:
        draft = await make_message(site.harness.client)
        url = f"{site.url}/dashboard/messages/{draft['id']}/delete"
        refused = await page.request.post(url, form={})
        assert refused.status == 403
        wrong = await page.request.post(url, form={"csrf": "not-the-token"})
        assert wrong.status == 403
        still = await site.harness.client.get(f"/email-messages/{draft['id']}")
        assert still.status_code == 200

    async def test_nul_characters_in_a_search_or_a_form_are_a_400_page(
        self, page: Page, site: Site
    ) -> None:
        searched = await page.goto(f"{site.url}/dashboard/messages?q=a%00b")
        assert searched is not None
        assert searched.status == 400
        await page.goto(f"{site.url}/dashboard/blocklist")
        token = await page.locator("input[name=csrf]").first.get_attribute("value")
        assert token is not None
        posted = await page.request.post(
            f"{site.url}/dashboard/blocklist",
            form={"csrf": token, "type": "email", "value": "nul\x00@example.com"},
        )
        assert posted.status == 400
        assert "NUL" in await posted.text()

    async def test_send_cancel_and_delete_a_draft_from_its_page(
        self, page: Page, site: Site
    ) -> None:
        draft = await make_message(site.harness.client, subject="Act on me")
        api = site.harness.client
        await _open(page, site, draft["id"])
        await page.get_by_role("button", name="Send").click()
        await page.get_by_role("button", name="Cancel sending").wait_for()
        assert (await api.get(f"/email-messages/{draft['id']}")).json()["status"] == "outbox"

        await page.get_by_role("button", name="Cancel sending").click()
        await page.get_by_role("button", name="Delete draft").wait_for()
        assert (await api.get(f"/email-messages/{draft['id']}")).json()["status"] == "draft"

        await page.get_by_role("button", name="Delete draft").click()
        await page.wait_for_url(re.compile(r".*/dashboard/messages$"))
        assert (await api.get(f"/email-messages/{draft['id']}")).status_code == 404

    async def test_blocklist_a_recipient_and_remove_it_from_the_message_page(
        self, page: Page, site: Site
    ) -> None:
        created = await _delivered(site, to=["blocked.one@example.com"])
        api = site.harness.client
        await _open(page, site, created["id"])
        await page.get_by_role("button", name="Blocklist blocked.one@example.com").click()
        remove = page.get_by_role(
            "button", name="Remove blocked.one@example.com from the blocklist"
        )
        await remove.wait_for()
        listed = await api.get("/blocklists", params={"filter": "value:blocked.one@example.com"})
        assert len(listed.json()) == 1

        await remove.click()
        await page.get_by_role("button", name="Blocklist blocked.one@example.com").wait_for()
        listed = await api.get("/blocklists", params={"filter": "value:blocked.one@example.com"})
        assert listed.json() == []

    async def test_resend_a_failed_message_and_follow_the_links_both_ways(
        self, page: Page, site: Site
    ) -> None:
        site.smtp.script("550 5.1.1 no such user")
        failed = await _delivered(site, subject="Bounced once")
        assert (await site.harness.message(failed["id"]))["status"] == "failed"

        await _open(page, site, failed["id"])
        await page.get_by_role("button", name="Resend").click()
        await page.wait_for_url(re.compile(r".*/dashboard/messages/(?!" + failed["id"] + r")\w+$"))
        copy_id = page.url.rsplit("/", 1)[1]
        assert (await site.harness.message(copy_id))["status"] == "outbox"

        await page.get_by_role("link", name=failed["id"]).click()
        await page.wait_for_url(re.compile(rf".*/dashboard/messages/{failed['id']}$"))
        await page.get_by_role("link", name=copy_id).click()
        await page.wait_for_url(re.compile(rf".*/dashboard/messages/{copy_id}$"))
        await site.harness.deliver()

    async def test_an_attachment_downloads_byte_for_byte(
        self, page: Page, site: Site, tmp_path: Path
    ) -> None:
        content = png_bytes(2000)
        uploaded = await upload_file(site.harness.client, content, filename="logo.png")
        attached = [{"resourceType": "file", "resourceId": uploaded["id"]}]
        created = await _delivered(site, attachments=attached)
        await _open(page, site, created["id"])
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name="logo.png").click()
        download = await waiting.value
        assert download.suggested_filename == "logo.png"
        await download.save_as(tmp_path / "logo.png")
        assert (tmp_path / "logo.png").read_bytes() == content
