"""CORS: off by default; with allowed origins, preflights answered before any key or session,
and the headers a browser script needs exposed."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.settings import Settings
from tests.conftest import make_settings
from tests.servers.http import CLIENT_TLS, serve_in_thread

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(
        database_url, tmp_path_factory.mktemp("cors"), cors_origins=f"{ORIGIN}, https://b.example"
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _preflight(method: str, origin: str = ORIGIN) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "reb-apikey, content-type, idempotency-key",
    }


async def test_preflight_is_answered_without_a_key(cors_url: str) -> None:
    async with httpx.AsyncClient(base_url=cors_url, verify=CLIENT_TLS) as http:
        response = await http.options("/email-messages", headers=_preflight("POST"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "reb-apikey" in allowed and "idempotency-key" in allowed


async def test_preflight_under_the_organization_path(cors_url: str) -> None:
    async with httpx.AsyncClient(base_url=cors_url, verify=CLIENT_TLS) as http:
        response = await http.options(
            "/organizations/org_x/email-messages/mail_msg_x", headers=_preflight("DELETE")
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN


async def test_a_disallowed_origin_gets_no_allowance(cors_url: str) -> None:
    async with httpx.AsyncClient(base_url=cors_url, verify=CLIENT_TLS) as http:
        response = await http.options(
            "/email-messages", headers=_preflight("POST", "https://evil.example")
        )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_answers_expose_pagination_location_and_rate_limit_headers(
    cors_url: str, organization: auth.NewOrganization
) -> None:
    headers = {"Origin": ORIGIN, "REB-APIKEY": organization.api_key}
    async with httpx.AsyncClient(base_url=cors_url, headers=headers, verify=CLIENT_TLS) as http:
        listed = await http.get("/api-keys")
        created = await http.post("/api-keys", json={"description": "browser"})
        unauthorized = await http.get("/api-keys", headers={"REB-APIKEY": "pr_wrong"})
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in listed.headers["access-control-expose-headers"].split(",")
    }
    assert {"pagination-total", "pagination-limit", "pagination-offset", "location"} <= exposed
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "retry-after"} <= exposed
    assert created.headers["access-control-allow-origin"] == ORIGIN
    # Errors too, so a browser script can read the problem.
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == ORIGIN


async def test_off_by_default(api_url: str, settings: Settings) -> None:
    assert settings.cors_origins == ""
    async with httpx.AsyncClient(base_url=api_url, verify=CLIENT_TLS) as http:
        response = await http.options("/email-messages", headers=_preflight("POST"))
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code in {401, 405}


def test_origins_setting_is_a_comma_separated_list(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cors_origins=" https://a.example/ ,https://b.example")
    assert settings.cors_origin_list() == ["https://a.example", "https://b.example"]


async def test_preflight_needs_no_database(tmp_path: Path) -> None:
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:1/none",  # nothing listens there
        tmp_path / "data",
        cors_origins=ORIGIN,
    )
    with serve_in_thread(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, verify=CLIENT_TLS) as http:
            response = await http.options("/email-messages", headers=_preflight("POST"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
