"""A delivery harness (the `harness_factory` fixture): a fresh database (claims are global, so no
worker driven one batch at a time, and one clock for both that tests move by hand."""

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import ManualClock
from postroom.core.crypto import SecretBox
from postroom.credentials import service as credentials
from postroom.credentials.schemas import SmtpCredentialCreate
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery.transports.registry import TransportRegistry
from postroom.delivery.worker import Worker, default_transport
from postroom.settings import (
    DeliverySettings,
    DestinationSettings,
    ProviderSettings,
    SenderSettings,
    Settings,
)
from tests.conftest import make_settings
from tests.databases import DatabaseFactory
from tests.servers.http import serve_in_thread

# Short, deterministic schedules: tests move the clock past each retry instead of waiting.
TEST_DELIVERY = {
    "max_attempts": 3,
    "backoff_base_seconds": 10,
    "backoff_max_seconds": 60,
    "lease_seconds": 30,
    "connect_timeout_seconds": 10,
    "smtp_greeting_timeout_seconds": 10,
    "smtp_handshake_timeout_seconds": 10,
    "send_timeout_seconds": 10,
    "smtp_data_end_timeout_seconds": 10,
    "message_timeout_seconds": 30,
    "poll_seconds": 0.05,
}


@dataclass
class Harness:
    client: httpx.AsyncClient
    worker: Worker
    clock: ManualClock
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    async def deliver(self, rounds: int = 10) -> int:
        """Runs batches until none is due; how many messages were claimed in all."""
        total = 0
        for _ in range(rounds):
            claimed = await self.worker.run_once()
            if claimed == 0:
                return total
            total += claimed
        raise AssertionError(f"still claiming after {rounds} batches")

    async def retry_all(self) -> int:
        """Moves the clock past every scheduled retry, then delivers."""
        self.clock.advance(timedelta(seconds=self.settings.delivery.backoff_max_seconds * 10))
        return await self.deliver()

    async def message(self, message_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/email-messages/{message_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def smtp_credential(self, organization_id: str, port: int) -> str:
        """The id of a new SMTP credential of the organization, for 127.0.0.1:`port`."""
        data = SmtpCredentialCreate(type="smtp", host="127.0.0.1", port=port)
        async with self.sessionmaker() as session, session.begin():
            credential = await credentials.create_credential(
                session, organization_id, data, self.worker.box, self.clock.now()
            )
            return credential.id

    async def attempts(self, message_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/email-messages/{message_id}/attempts")
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body


HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def harness_factory(databases: DatabaseFactory, tmp_path: Path) -> HarnessFactory:
    @asynccontextmanager
    async def build(
        *,
        smtp_url: str | None = None,
        ca_file: Path | None = None,
        providers: dict[str, str] | None = None,
        destinations: str = "127.0.0.1",
        senders: dict[str, Any] | None = None,
        **delivery: Any,
    ) -> AsyncIterator[Harness]:
        url = await databases.clone()
        settings = make_settings(
            url,
            tmp_path / "data",
            smtp_url=smtp_url,
            secret_key="test-secret-key-of-enough-length",
            delivery=DeliverySettings(**{**TEST_DELIVERY, "smtp_ca_file": ca_file, **delivery}),
            providers=ProviderSettings(**(providers or {})),
            destinations=DestinationSettings(allow=destinations),
            # The suite's senders are example.com's: the server-wide transport takes them.
            senders=SenderSettings(**{"allowed_domains": "example.com", **(senders or {})}),
        )
        clock = ManualClock()
        engine = create_engine(url, pool_size=2)
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            organization = await auth.create_organization(session, "delivery", clock.now())
        transports = TransportRegistry(default_transport(settings))
        worker = Worker(
            sessionmaker=sessionmaker,
            settings=settings,
            box=SecretBox(settings.stored_secret()),
            transports=transports,
            clock=clock,
            rng=random.Random(7),
            name="test-worker",
        )
        try:
            with serve_in_thread(create_app(settings, clock=clock)) as api_url:
                async with httpx.AsyncClient(
                    base_url=api_url, headers={"REB-APIKEY": organization.api_key}, timeout=30
                ) as client:
                    yield Harness(client, worker, clock, settings, sessionmaker)
        finally:
            await transports.aclose()
            await engine.dispose()

    return build
