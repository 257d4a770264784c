"""Addresses at .test, .example and localhost: taken where the operator allows them (on in
development), refused otherwise with a message that says why."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.settings import Settings
from tests.conftest import make_settings
from tests.factories import message_body
from tests.servers.http import CLIENT_TLS, serve_in_thread

DEVELOPER_ADDRESSES = ["dev@app.test", "dev@localhost", "qa@shop.example"]


@pytest.fixture(scope="module")
def strict_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(
        database_url, tmp_path_factory.mktemp("strict"), developer_domains=False
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("address", DEVELOPER_ADDRESSES)
async def test_taken_in_development(client: httpx.AsyncClient, address: str) -> None:
    response = await client.post("/email-messages", json=message_body(to=[address]))
    assert response.status_code == 201, response.text
    assert response.json()["to"] == [address]


async def test_local_part_still_checked(client: httpx.AsyncClient) -> None:
    response = await client.post("/email-messages", json=message_body(to=["a b@app.test"]))
    assert response.status_code == 422
    [problem] = response.json()["invalidFields"]
    assert problem["field"] == "to.0"
    assert problem["message"].startswith("not a valid email address")


@pytest.mark.parametrize("address", DEVELOPER_ADDRESSES)
async def test_refused_where_the_operator_says_so(
    strict_url: str, organization: auth.NewOrganization, address: str
) -> None:
    async with httpx.AsyncClient(
        base_url=strict_url, headers={"REB-APIKEY": organization.api_key}, verify=CLIENT_TLS
    ) as http:
        response = await http.post("/email-messages", json=message_body(to=[address]))
    assert response.status_code == 422
    [problem] = response.json()["invalidFields"]
    assert problem["field"] == "to.0"
    assert "reserved for testing" in problem["message"]
    assert "POSTROOM_DEVELOPER_DOMAINS" in problem["message"]
    assert not problem["message"].startswith("Value error")


def test_on_in_development_off_in_production(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).developer_domains_allowed()
    production = Settings(
        data_dir=tmp_path,
        environment="production",
        database_url="postgresql+asyncpg://db/postroom",
        secret_key="k" * 32,
    )
    assert not production.developer_domains_allowed()
    assert Settings(data_dir=tmp_path, developer_domains=False).developer_domains_allowed() is False
