"""A running postroom with real messages delivered to a real SMTP sink, a real Chromium
(Debian's, driven by Playwright: no browser download), and a signed-in page per test."""

import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import ManualClock
from postroom.core.crypto import SecretBox
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery.transports.registry import TransportRegistry
from postroom.delivery.worker import Worker, default_transport
from postroom.settings import DeliverySettings, SenderSettings
from tests.conftest import make_settings
from tests.databases import DatabaseFactory
from tests.factories import png_bytes
from tests.harness import TEST_DELIVERY, Harness
from tests.servers.http import serve_in_thread
from tests.servers.smtp import SmtpServer, smtp_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
# Without the background-networking flags Chromium keeps calling out to Google's hosts, which
# this machine's closed network refuses (and no test traffic may leave 127.0.0.1).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass
class ImageServer:
    """Serves one PNG over https on 127.0.0.1 and records every request for it."""

    url: str = ""
    requests: list[str] = field(default_factory=list)


@dataclass
class Site:
    """postroom serving the dashboard, its worker, its SMTP sink, and two organizations."""

    url: str
    harness: Harness
    smtp: SmtpServer
    api_key: str
    organization_id: str
    other: httpx.AsyncClient
    images: ImageServer


def _image_app(images: ImageServer) -> Starlette:
    pixel = png_bytes(64)

    async def pixel_png(request: Request) -> Response:
        images.requests.append(str(request.url))
        return Response(pixel, media_type="image/png")

    return Starlette(routes=[Route("/pixel.png", pixel_png)])


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("images") / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    images = ImageServer()
    with serve_in_thread(_image_app(images), tls_pem=str(pem)) as url:
        images.url = url
        yield images


@pytest.fixture(scope="module")
async def site(
    databases: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    image_server: ImageServer,
) -> AsyncIterator[Site]:
    with smtp_server() as smtp:
        url = await databases.clone()
        settings = make_settings(
            url,
            tmp_path_factory.mktemp("dashboard"),
            smtp_url=f"smtp://127.0.0.1:{smtp.port}",
            secret_key="test-secret-key-of-enough-length",
            delivery=DeliverySettings(**TEST_DELIVERY),
            senders=SenderSettings(allowed_domains="example.com"),
        )
        clock = ManualClock()
        engine = create_engine(url, pool_size=2)
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            mine = await auth.create_organization(session, "dashboard", clock.now())
            other = await auth.create_organization(session, "someone else", clock.now())
        transports = TransportRegistry(default_transport(settings))
        worker = Worker(
            sessionmaker=sessionmaker,
            settings=settings,
            box=SecretBox(settings.stored_secret()),
            transports=transports,
            clock=clock,
            rng=random.Random(7),
            name="dashboard-test-worker",
        )
        try:
            with serve_in_thread(create_app(settings, clock=clock)) as api_url:
                async with (
                    httpx.AsyncClient(
                        base_url=api_url, headers={"REB-APIKEY": mine.api_key}, timeout=30
                    ) as client,
                    httpx.AsyncClient(
                        base_url=api_url, headers={"REB-APIKEY": other.api_key}, timeout=30
                    ) as other_client,
                ):
                    harness = Harness(client, worker, clock, settings, sessionmaker)
                    yield Site(
                        api_url,
                        harness,
                        smtp,
                        mine.api_key,
                        mine.organization_id,
                        other_client,
                        image_server,
                    )
        finally:
            await transports.aclose()
            await engine.dispose()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        pytest.fail("Debian's chromium is not installed: `python3 dev.py test` installs it")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # The image server's certificate is trustme's, which Chromium does not know.
    context = await browser.new_context(accept_downloads=True, ignore_https_errors=True)
    yield context
    await context.close()


async def sign_in(page: Page, site: Site, api_key: str | None = None) -> None:
    await page.goto(f"{site.url}/dashboard/sign-in")
    await page.get_by_label("API key").fill(api_key or site.api_key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/dashboard/messages$"))


@pytest.fixture
async def page(context: BrowserContext, site: Site) -> Page:
    """A page signed in to the site's organization."""
    page = await context.new_page()
    await sign_in(page, site)
    return page


async def screenshot(page: Page, name: str) -> None:
    """Saved as a test artifact (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    # A full_page screenshot stretches the page without repainting the preview frame (its
    # own process), which comes out blank: grow the viewport to the page instead.
    height = await page.evaluate("document.documentElement.scrollHeight")
    viewport = page.viewport_size
    await page.set_viewport_size({"width": 1280, "height": height})
    await page.wait_for_timeout(200)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    if viewport is not None:
        await page.set_viewport_size(viewport)


AXE = Axe()
# The preview frame runs no script, so axe could not report from inside it: left out.
AXE_OPTIONS = {"resultTypes": ["violations"], "iframes": False}


async def assert_accessible(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    results = await AXE.run(page, options=AXE_OPTIONS)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]
    assert not bad, "\n".join(bad)
