"""The destination policy at the API: an SMTP credential for an address the operator has not
allowed is refused when stored (in any spelling), and when it is put back in use."""

import httpx

from postroom.settings import DestinationSettings
from tests.harness import HarnessFactory

POLICY = "is not an allowed destination (POSTROOM_DESTINATIONS__ALLOW)"
REFUSED_HOSTS = [
    "127.0.0.1",
    "169.254.169.254",
    "10.0.0.1",
    "0x7f000001",
    "2130706433",
    "::1",
    "::ffff:127.0.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "0.0.0.0",  # noqa: S104 - a destination refused, not an address bound to
]


def _host_problem(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    [problem] = [p for p in response.json()["invalidFields"] if p["field"] == "host"]
    message: str = problem["message"]
    return message


class TestCreate:
    async def test_refused_addresses_are_422_on_host_naming_the_policy(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(destinations="") as h:
            for host in REFUSED_HOSTS:
                response = await h.client.post(
                    "/service-credentials/smtp", json={"host": host, "port": 25}
                )
                assert _host_problem(response) == f"{host} {POLICY}", host
            listed = await h.client.get("/service-credentials/smtp")
            assert listed.json() == []

    async def test_public_addresses_and_names_are_stored(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(destinations="") as h:
            for host in ["8.8.8.8", "smtp.example.com", "localhost"]:
                response = await h.client.post(
                    "/service-credentials/smtp", json={"host": host, "port": 587}
                )
                assert response.status_code == 201, response.text

    async def test_an_allowed_network_is_stored(self, harness_factory: HarnessFactory) -> None:
        async with harness_factory(destinations="10.0.0.0/8") as h:
            response = await h.client.post(
                "/service-credentials/smtp", json={"host": "10.1.2.3", "port": 25}
            )
            assert response.status_code == 201, response.text


class TestPatch:
    async def test_a_credential_the_policy_now_refuses_cannot_stay_in_use_but_can_be_switched_off(
        self, harness_factory: HarnessFactory
    ) -> None:
        async with harness_factory(destinations="127.0.0.1") as h:
            created = await h.client.post(
                "/service-credentials/smtp", json={"host": "127.0.0.1", "port": 25}
            )
            assert created.status_code == 201, created.text
            url = f"/service-credentials/smtp/{created.json()['id']}"
            # The operator narrows the policy (the API reads the settings on each request).
            h.settings.destinations = DestinationSettings(allow="")

            rate = await h.client.patch(url, json={"maxSendRate": 5})
            assert _host_problem(rate) == f"127.0.0.1 {POLICY}"
            switched_off = await h.client.patch(url, json={"status": "inactive"})
            assert switched_off.status_code == 200, switched_off.text
            back_on = await h.client.patch(url, json={"status": "active"})
            assert _host_problem(back_on) == f"127.0.0.1 {POLICY}"
            assert (await h.client.get(url)).json()["status"] == "inactive"
