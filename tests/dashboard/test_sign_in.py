"""Signing in and out of the dashboard, its session cookie and its page headers."""

import re
from datetime import timedelta

import httpx
from playwright.async_api import BrowserContext, Page

from postroom.app import create_app
from postroom.dashboard.security import SESSION_COOKIE
from postroom.settings import DashboardSettings
from tests.dashboard.conftest import Site, assert_accessible, screenshot, sign_in
from tests.servers.http import serve_in_thread


class TestSignIn:
    async def test_sign_in_sets_a_strict_http_only_session_and_sign_out_ends_it(
        self, context: BrowserContext, site: Site
    ) -> None:
        page = await context.new_page()
        response = await page.goto(f"{site.url}/dashboard/messages")
        assert response is not None
        assert page.url.endswith("/dashboard/sign-in")
        await assert_accessible(page)
        await screenshot(page, "sign-in")

        await sign_in(page, site)
        [cookie] = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["value"] != site.api_key

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r".*/dashboard/sign-in$"))
        await page.goto(f"{site.url}/dashboard/messages")
        assert page.url.endswith("/dashboard/sign-in")

    async def test_a_wrong_key_is_refused_on_the_form(
        self, context: BrowserContext, site: Site
    ) -> None:
        page = await context.new_page()
        await page.goto(f"{site.url}/dashboard/sign-in")
        await page.get_by_label("API key").fill("pr_not-a-key")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("alert").wait_for()
        assert "not valid" in await page.get_by_role("alert").inner_text()

    async def test_every_page_has_a_strict_content_security_policy(
        self, page: Page, site: Site
    ) -> None:
        response = await page.goto(f"{site.url}/dashboard/messages")
        assert response is not None
        csp = await response.header_value("content-security-policy")
        assert csp is not None
        assert "default-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


class TestSession:
    async def test_a_session_ends_when_it_expires(
        self, context: BrowserContext, site: Site
    ) -> None:
        page = await context.new_page()
        await sign_in(page, site)
        lifetime = site.harness.settings.dashboard.session_hours
        site.harness.clock.advance(timedelta(hours=lifetime, seconds=1))
        await page.goto(f"{site.url}/dashboard/messages")
        assert page.url.endswith("/dashboard/sign-in")

    async def test_a_session_ends_when_its_api_key_is_revoked(
        self, context: BrowserContext, site: Site
    ) -> None:
        api = site.harness.client
        created = await api.post("/api-keys", json={"description": "support desk"})
        assert created.status_code == 201, created.text
        key = created.json()
        page = await context.new_page()
        await sign_in(page, site, key["secretKey"])
        assert (await api.delete(f"/api-keys/{key['id']}")).status_code == 204
        await page.goto(f"{site.url}/dashboard/messages")
        assert page.url.endswith("/dashboard/sign-in")

    async def test_the_cookie_is_secure_over_https_and_behind_a_trusted_proxy(
        self, site: Site
    ) -> None:
        cookies = []
        for trusted, headers in ((False, {}), (True, {"X-Forwarded-Proto": "https"})):
            settings = site.harness.settings.model_copy(
                update={"dashboard": DashboardSettings(trust_forwarded_proto=trusted)}
            )
            with serve_in_thread(create_app(settings)) as url:
                async with httpx.AsyncClient(base_url=url) as browser:
                    form = await browser.get("/dashboard/sign-in")
                    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                    assert csrf is not None
                    answer = await browser.post(
                        "/dashboard/sign-in",
                        data={"api_key": site.api_key, "csrf": csrf.group(1)},
                        headers=headers,
                    )
                    assert answer.status_code == 303, answer.text
                    [session] = [
                        c
                        for c in answer.headers.get_list("set-cookie")
                        if c.startswith(f"{SESSION_COOKIE}=")
                    ]
                    cookies.append(session)
        plain, behind_proxy = cookies
        assert "HttpOnly" in plain and "SameSite=strict" in plain and "Max-Age=" in plain
        assert "Secure" not in plain
        assert "Secure" in behind_proxy
