"""The setup and health pages: queue, credentials, delivery settings, webhooks, blocklist."""

import re

from playwright.async_api import Page

from tests.dashboard.conftest import Site, assert_accessible, screenshot
from tests.factories import make_message


class TestSetupPages:
    async def test_the_queue_page_shows_the_outbox_depth_the_api_reports_and_the_hours(
        self, page: Page, site: Site
    ) -> None:
        api = site.harness.client
        site.smtp.script("250 2.0.0 OK", "550 5.1.1 no such user")
        for _ in range(2):
            await make_message(api, status="outbox")
            await site.harness.deliver()
        for _ in range(3):
            await make_message(api, status="outbox")
        answer = await api.get("/email-messages", params={"filter": "status:outbox", "limit": 0})
        expected = answer.headers["Pagination-Total"]
        assert expected == "3"
        metrics = (await api.get("/metrics")).text
        depth = re.search(r"^postroom_outbox_depth (\S+)$", metrics, re.MULTILINE)
        assert depth is not None

        await page.goto(f"{site.url}/dashboard/queue")
        assert await page.locator("#outbox-depth").inner_text() == expected
        # This module's site has a database of its own: the server's queue is these three.
        assert await page.locator("#queue-depth").inner_text() == str(int(float(depth.group(1))))
        assert await page.locator("svg.chart").count() == 1
        # The current hour, last: the two delivered above, one sent and one failed.
        last_hour = page.get_by_role("table").last.get_by_role("row").last
        assert (await last_hour.inner_text()).split("\t")[1:] == ["1", "1"]
        assert await page.locator("svg.chart rect.sent[height='160.0']").count() == 0
        assert await page.locator("svg.chart rect.failed[height='80.0']").count() == 1
        await assert_accessible(page)
        await screenshot(page, "queue")
        await site.harness.deliver()

    async def test_change_a_credentials_status_and_never_see_its_secret(
        self, page: Page, site: Site
    ) -> None:
        api = site.harness.client
        created = await api.post(
            "/service-credentials/smtp",
            json={
                "type": "smtp",
                "host": "127.0.0.1",
                "port": site.smtp.port,
                "auth": {"type": "plain", "username": "u", "password": "hunter2-secret"},
            },
        )
        assert created.status_code == 201, created.text
        credential = created.json()["id"]
        url = f"/service-credentials/smtp/{credential}"
        await page.goto(f"{site.url}/dashboard/credentials")
        assert "hunter2-secret" not in await page.content()

        await page.get_by_role("button", name=f"Make inactive {credential}").click()
        await page.get_by_role("button", name=f"Activate {credential}").wait_for()
        assert (await api.get(url)).json()["status"] == "inactive"
        await page.get_by_role("button", name=f"Activate {credential}").click()
        await page.get_by_role("button", name=f"Make inactive {credential}").wait_for()
        assert (await api.get(url)).json()["status"] == "active"
        await page.get_by_role("button", name=f"Deactivate for good {credential}").click()
        row = page.get_by_role("row").filter(has_text=credential)
        await row.get_by_role("cell", name="final").wait_for()
        assert (await api.get(url)).json()["status"] == "deactivated"

    async def test_credentials_webhooks_and_blocklist_pages_pass_axe(
        self, page: Page, site: Site
    ) -> None:
        for name in ("credentials", "delivery-settings", "webhooks", "blocklist"):
            response = await page.goto(f"{site.url}/dashboard/{name}")
            assert response is not None
            assert response.status == 200
            await assert_accessible(page)
            await screenshot(page, name)
