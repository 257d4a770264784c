"""/blocklists through the API: Rebilly's operations for types email and email-domain, values
validated and lower-cased, 409 for a duplicate, other organizations' entries out of sight."""

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.contract.reference import SCHEMAS


async def make_entry(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"type": "email", "value": "blocked@example.com", **overrides}
    response = await client.post("/blocklists", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [p["field"] for p in response.json()["invalidFields"]]


@cache
def _validator() -> jsonschema.Draft202012Validator:
    def retrieve(uri: str) -> Resource[Any]:
        contents = yaml.safe_load(Path(uri.removeprefix("file://")).read_text())
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    path = SCHEMAS / "Blocklist.yaml"
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    schema = {**yaml.safe_load(path.read_text()), "$id": path.as_uri()}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _check_rebillys_schema(answer: dict[str, Any]) -> None:
    errors = [e.message for e in _validator().iter_errors(answer)]
    assert errors == [], answer


class TestCrud:
    async def test_create_answers_201_with_location_lower_cased_and_manual(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/blocklists",
            json={
                "type": "email",
                "value": "  Someone@Example.COM ",
                "expirationTime": "2030-01-02T03:04:05+02:00",
                "source": "automated-blocklists",
                "entityId": "mail_x",
                "id": "blkl_mine",
            },
        )
        assert response.status_code == 201, response.text
        created = response.json()
        _check_rebillys_schema(created)
        assert created["id"].startswith("blkl_") and created["id"] != "blkl_mine"
        assert response.headers["Location"].endswith(f"/blocklists/{created['id']}")
        assert created["_links"] == [{"rel": "self", "href": response.headers["Location"]}]
        assert created["type"] == "email"
        assert created["value"] == "someone@example.com"
        assert created["expirationTime"] == "2030-01-02T01:04:05Z"
        assert created["source"] == "manual-blocklists"
        assert created["entityId"] is None

        fetched = await client.get(f"/blocklists/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == created

    async def test_email_domain_is_kept_lower_cased(self, client: httpx.AsyncClient) -> None:
        created = await make_entry(client, type="email-domain", value="Spam.Example.ORG")
        _check_rebillys_schema(created)
        assert created["value"] == "spam.example.org"
        assert created["expirationTime"] is None

    async def test_an_internationalized_domain_is_kept_in_its_ascii_form(
        self, client: httpx.AsyncClient
    ) -> None:
        domain = await make_entry(client, type="email-domain", value="Bücher.example.com")
        assert domain["value"] == "xn--bcher-kva.example.com"
        address = await make_entry(client, value="Anna@BÜCHER.example.com")
        assert address["value"] == "anna@xn--bcher-kva.example.com"
        again = await client.post(
            "/blocklists", json={"type": "email-domain", "value": "xn--bcher-kva.example.com"}
        )
        assert again.status_code == 409

    async def test_list_has_pagination_headers_filter_sort_and_q(
        self, client: httpx.AsyncClient
    ) -> None:
        first = await make_entry(client, value="a@list.example.com")
        second = await make_entry(client, type="email-domain", value="list.example.net")
        listed = await client.get("/blocklists", params={"limit": 1})
        assert listed.status_code == 200
        assert listed.headers["Pagination-Total"] == "2"
        assert listed.headers["Pagination-Limit"] == "1"
        assert listed.headers["Pagination-Offset"] == "0"
        everything = (await client.get("/blocklists")).json()
        for item in everything:
            _check_rebillys_schema(item)
        assert {e["id"] for e in everything} == {first["id"], second["id"]}

        domains = await client.get("/blocklists", params={"filter": "type:email-domain"})
        assert [e["id"] for e in domains.json()] == [second["id"]]
        searched = await client.get("/blocklists", params={"q": "A@LIST"})
        assert [e["id"] for e in searched.json()] == [first["id"]]
        ordered = await client.get("/blocklists", params={"sort": "value"})
        assert [e["value"] for e in ordered.json()] == ["a@list.example.com", "list.example.net"]
        unknown = await client.get("/blocklists", params={"sort": "nope"})
        assert _fields(unknown) == ["sort"]

    async def test_put_creates_with_the_given_id_then_replaces(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await client.put(
            "/blocklists/blkl_put-me", json={"type": "email", "value": "put@example.com"}
        )
        assert created.status_code == 201, created.text
        assert created.headers["Location"].endswith("/blocklists/blkl_put-me")
        assert created.json()["id"] == "blkl_put-me"
        _check_rebillys_schema(created.json())

        replaced = await client.put(
            "/blocklists/blkl_put-me",
            json={
                "type": "email-domain",
                "value": "Put.Example.com",
                "expirationTime": "2031-05-06T07:08:09Z",
            },
        )
        assert replaced.status_code == 200, replaced.text
        body = replaced.json()
        _check_rebillys_schema(body)
        assert (body["type"], body["value"]) == ("email-domain", "put.example.com")
        assert body["expirationTime"] == "2031-05-06T07:08:09Z"
        assert body["createdTime"] == created.json()["createdTime"]

    async def test_delete_answers_204_then_404(self, client: httpx.AsyncClient) -> None:
        created = await make_entry(client, value="gone@example.com")
        deleted = await client.delete(f"/blocklists/{created['id']}")
        assert deleted.status_code == 204
        assert (await client.get(f"/blocklists/{created['id']}")).status_code == 404
        assert (await client.delete(f"/blocklists/{created['id']}")).status_code == 404
        # The value may be listed again once its entry is gone.
        await make_entry(client, value="gone@example.com")


class TestValidation:
    @pytest.mark.parametrize(
        "type_", ["payment-card", "ip-address", "country", "EMAIL", "", None, 3]
    )
    async def test_other_types_are_422_naming_type(
        self, client: httpx.AsyncClient, type_: object
    ) -> None:
        response = await client.post("/blocklists", json={"type": type_, "value": "x@example.com"})
        assert _fields(response) == ["type"]

    @pytest.mark.parametrize(
        "value",
        ["not-an-address", "two@@example.com", "a@", "@example.com", "a b@example.com", ""],
    )
    async def test_an_email_entry_takes_an_address_only(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        response = await client.post("/blocklists", json={"type": "email", "value": value})
        assert _fields(response) == ["value"]

    @pytest.mark.parametrize(
        "value", ["user@example.com", "no_dots", "-bad-.example.com", "exa mple.com", "a..b.com"]
    )
    async def test_an_email_domain_entry_takes_a_domain_only(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        response = await client.post("/blocklists", json={"type": "email-domain", "value": value})
        assert _fields(response) == ["value"]

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "email", "value": "nul\x00@example.com"},
            {"type": "email", "value": "a" * 300 + "@example.com"},
            {"type": "email", "value": ["x@example.com"]},
            {"type": "email"},
        ],
    )
    async def test_a_bad_value_is_422_naming_value(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post("/blocklists", json=body)
        assert response.status_code in (400, 422), response.text
        if response.status_code == 422:
            assert _fields(response) == ["value"]

    @pytest.mark.parametrize(
        "when", ["tomorrow", "2030-01-01T00:00:00", "9999-12-31T23:59:59-23:59", 12]
    )
    async def test_a_bad_expiration_time_is_422_naming_it(
        self, client: httpx.AsyncClient, when: object
    ) -> None:
        response = await client.post(
            "/blocklists",
            json={"type": "email", "value": "when@example.com", "expirationTime": when},
        )
        assert _fields(response) == ["expirationTime"]

    async def test_a_bad_put_id_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/blocklists/has%20space", json={"type": "email", "value": "x@example.com"}
        )
        assert _fields(response) == ["id"]


class TestConflicts:
    async def test_a_duplicate_type_and_value_is_409_whatever_the_case(
        self, client: httpx.AsyncClient
    ) -> None:
        await make_entry(client, value="dup@example.com")
        again = await client.post("/blocklists", json={"type": "email", "value": "DUP@example.com"})
        assert again.status_code == 409, again.text
        assert again.json()["type"] == "urn:postroom:problem:conflict"
        # The same value as another type is another entry.
        await make_entry(client, type="email-domain", value="example.com")

    async def test_put_onto_another_entrys_value_is_409(self, client: httpx.AsyncClient) -> None:
        await make_entry(client, value="one@example.com")
        other = await make_entry(client, value="two@example.com")
        response = await client.put(
            f"/blocklists/{other['id']}", json={"type": "email", "value": "one@example.com"}
        )
        assert response.status_code == 409
        created = await client.put(
            "/blocklists/blkl_new-one", json={"type": "email", "value": "one@example.com"}
        )
        assert created.status_code == 409
        # Its own value again is no conflict.
        same = await client.put(
            f"/blocklists/{other['id']}", json={"type": "email", "value": "two@example.com"}
        )
        assert same.status_code == 200


class TestIsolation:
    async def test_another_organizations_entries_are_404_and_never_listed(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await make_entry(other_client, value="shared@example.com")
        url = f"/blocklists/{theirs['id']}"
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url)).status_code == 404
        assert (await client.get("/blocklists")).json() == []
        # The same value is free in this organization, and its PUT of their id is refused.
        mine = await make_entry(client, value="shared@example.com")
        assert mine["id"] != theirs["id"]
        taken = await client.put(url, json={"type": "email", "value": "mine@example.com"})
        assert taken.status_code == 409
        assert (await other_client.get(url)).json()["value"] == "shared@example.com"
        assert [e["id"] for e in (await other_client.get("/blocklists")).json()] == [theirs["id"]]

    async def test_without_a_key_it_is_401(self, anonymous: httpx.AsyncClient) -> None:
        assert (await anonymous.get("/blocklists")).status_code == 401
