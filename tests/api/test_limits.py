"""Request limits: body size and disk reserve (api/limits.py), recipients and metadata
(messages/schemas.py)."""

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from postroom.api.limits import DiskReserveMiddleware
from postroom.auth.service import NewOrganization
from postroom.messages.schemas import MAX_METADATA_ENTRIES, MAX_RECIPIENTS
from tests.api.conftest import ApiFactory
from tests.factories import message_body


class TestBodySize:
    async def test_declared_body_over_the_limit_is_413(
        self, api_factory: ApiFactory, organization: NewOrganization
    ) -> None:
        with api_factory(max_body_bytes=2048) as url:
            async with httpx.AsyncClient(
                base_url=url, headers={"REB-APIKEY": organization.api_key}
            ) as client:
                response = await client.post("/email-messages", json=message_body(text="x" * 4096))
                assert response.status_code == 413
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["status"] == 413
                listed = await client.get("/email-messages")
                assert listed.json() == []

    async def test_streamed_body_without_length_over_the_limit_is_413(
        self, api_factory: ApiFactory, organization: NewOrganization
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"from": "a@example.com", "text": "'
            for _ in range(10):
                yield b"y" * 1024
            yield b'"}'

        with api_factory(max_body_bytes=2048) as url:
            async with httpx.AsyncClient(
                base_url=url, headers={"REB-APIKEY": organization.api_key}
            ) as client:
                response = await client.post(
                    "/email-messages",
                    content=chunks(),
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code == 413

    async def test_body_under_the_limit_is_accepted(
        self, api_factory: ApiFactory, organization: NewOrganization
    ) -> None:
        with api_factory(max_body_bytes=4096) as url:
            async with httpx.AsyncClient(
                base_url=url, headers={"REB-APIKEY": organization.api_key}
            ) as client:
                response = await client.post("/email-messages", json=message_body())
                assert response.status_code == 201


class TestFieldLimits:
    @pytest.mark.parametrize("field", ["to", "cc", "bcc"])
    async def test_too_many_recipients_is_422(self, client: httpx.AsyncClient, field: str) -> None:
        addresses = [f"user{n}@example.com" for n in range(MAX_RECIPIENTS + 1)]
        response = await client.post("/email-messages", json=message_body(**{field: addresses}))
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == field

    async def test_the_maximum_number_of_recipients_is_fine(
        self, client: httpx.AsyncClient
    ) -> None:
        addresses = [f"user{n}@example.com" for n in range(MAX_RECIPIENTS)]
        response = await client.post("/email-messages", json=message_body(to=addresses))
        assert response.status_code == 201

    async def test_too_many_metadata_entries_is_422(self, client: httpx.AsyncClient) -> None:
        metadata = {f"k{n}": "v" for n in range(MAX_METADATA_ENTRIES + 1)}
        response = await client.post("/email-messages", json=message_body(metadata=metadata))
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"] == "metadata"

    async def test_an_overlong_metadata_value_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email-messages", json=message_body(metadata={"note": "v" * 2001})
        )
        assert response.status_code == 422
        assert response.json()["invalidFields"][0]["field"].startswith("metadata.")


class TestDiskReserveReading:
    """The free space is read once per recheck interval, not on every write."""

    @staticmethod
    def short_of_room(path: Path, *, recheck_seconds: float) -> DiskReserveMiddleware:
        """Its reserve more than the disk has free."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise AssertionError("not called")

        reserve = shutil.disk_usage(path).free * 2
        return DiskReserveMiddleware(app, [path], reserve, recheck_seconds=recheck_seconds)

    def test_a_reading_is_kept_until_the_recheck(self, tmp_path: Path) -> None:
        middleware = self.short_of_room(tmp_path, recheck_seconds=3600)
        assert middleware._short()
        middleware.reserve = 0  # room again, but not read again yet
        assert middleware._short()

    def test_with_no_recheck_interval_every_write_reads_it(self, tmp_path: Path) -> None:
        middleware = self.short_of_room(tmp_path, recheck_seconds=0)
        assert middleware._short()
        middleware.reserve = 0
        assert not middleware._short()
