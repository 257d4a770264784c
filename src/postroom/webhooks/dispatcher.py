"""The webhook loop, beside the mail worker in every worker process: claim due deliveries in
one short transaction, send each with no transaction open, record each attempt in another.

A worker sends at most `concurrency_per_endpoint` requests to one webhook at once and at most
`batch_size` in all; a delivery is claimed only when a slot of its webhook is free, so a slow or
dead endpoint holds only its own slots and every other endpoint's events go on. At least once:
a worker killed mid-send leaves its deliveries leased; when the leases run out another worker
sends them again, with the same webhook-id. A worker killed outright can so send at most
`batch_size` deliveries twice."""

import asyncio
import json
import logging
import random
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.clock import Clock, SystemClock
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.core.metrics import WEBHOOK_ATTEMPTS
from postroom.credentials import service as credentials
from postroom.settings import Settings
from postroom.webhooks import repository, retry
from postroom.webhooks.client import Answer, Credential, Outgoing, Verdict, WebhookClient
from postroom.webhooks.models import DeliveryStatus, WebhookStatus

log = logging.getLogger(__name__)

TRACKING_PREFIX = "hook_log_"


def new_client(settings: Settings) -> WebhookClient:
    return WebhookClient(
        settings.destination_policy(),
        connect_timeout=settings.webhooks.connect_timeout_seconds,
        timeout=settings.webhooks.timeout_seconds,
    )


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The body of every attempt of an event: the stored payload, serialised the same way each
    time (the stored JSON does not change, so neither do the bytes signed)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def credential_of(loaded: credentials.DeliveryCredential | None, url: str) -> Credential | None:
    """Basic or digest auth from a webhook credential (none: no HTTP auth). A credential names
    its host (Rebilly's WebhookCredential): its password goes to that host only, never to
    another one a webhook's URL was changed to."""
    if loaded is None:
        return None
    host = str(loaded.settings.get("host") or "").lower().rstrip(".")
    if host and host != (urlsplit(url).hostname or "").lower().rstrip("."):
        return None
    auth = loaded.settings.get("auth")
    kind = auth.get("type") if isinstance(auth, dict) else auth
    if kind not in ("basic", "digest"):
        return None
    username = (auth.get("username") if isinstance(auth, dict) else None) or loaded.settings.get(
        "username", ""
    )
    return Credential(kind, str(username), loaded.secrets.get("password", ""))


@dataclass(frozen=True)
class Job:
    delivery_id: str
    organization_id: str
    webhook_id: str
    event_id: str
    event_type: str
    entity_id: str
    attempt: int
    initiated: datetime
    token: str
    """The lease the claim took."""
    outgoing: Outgoing | None
    """None: nothing to send (the webhook is gone or inactive); `skip` says why."""
    skip: str | None = None


class Dispatcher:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        box: SecretBox,
        client: WebhookClient,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.config = settings.webhooks
        self.box = box
        self.client = client
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.in_flight: dict[str, int] = {}
        self._freed = asyncio.Event()

    async def run_once(self) -> int:
        """Claims what is due now (within the concurrency limits), sends it all and records
        it: how many deliveries were claimed."""
        jobs = await self.claim()
        await asyncio.gather(*(self._send_and_record(job) for job in jobs))
        return len(jobs)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. Sends still under way then are dropped: their leases run out
        and they are sent again (at least once)."""
        sending: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                jobs: list[Job] = []
                if len(sending) < self.config.batch_size:
                    try:
                        jobs = await self.claim(self.config.batch_size - len(sending))
                    except Exception:
                        log.exception("webhook deliveries not claimed")
                for job in jobs:
                    task = asyncio.create_task(self._send_and_record(job))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                if jobs:
                    continue
                self._freed.clear()
                freed = asyncio.create_task(self._freed.wait())
                await asyncio.wait(
                    {stopping, freed},
                    timeout=self.config.poll_seconds,
                    return_when="FIRST_COMPLETED",
                )
                freed.cancel()
        finally:
            stopping.cancel()
            for task in sending:
                task.cancel()
            with suppress(asyncio.CancelledError):
                await asyncio.gather(*sending, return_exceptions=True)

    async def claim(self, limit: int | None = None) -> list[Job]:
        now = self.clock.now()
        token = new_id("")
        per_webhook = self.config.concurrency_per_endpoint
        async with self.sessionmaker() as session, session.begin():
            ids = await repository.claim_due_deliveries(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self.config.lease_seconds),
                token=token,
                limit=self.config.batch_size if limit is None else limit,
                per_webhook=per_webhook,
                allowance={w: per_webhook - n for w, n in self.in_flight.items()},
            )
            if not ids:
                return []
            claimed = await repository.load_claimed(session, ids)
            credential_ids = {
                c.webhook.credential_id
                for c in claimed
                if c.webhook is not None and c.webhook.credential_id
            }
            loaded = await credentials.load_for_delivery(session, credential_ids, self.box)
        jobs = [self._job(c, token, now, loaded) for c in claimed]
        for job in jobs:
            self.in_flight[job.webhook_id] = self.in_flight.get(job.webhook_id, 0) + 1
        return jobs

    def _job(
        self,
        claimed: repository.ClaimedDelivery,
        token: str,
        now: datetime,
        loaded: dict[str, credentials.DeliveryCredential],
    ) -> Job:
        delivery, event, webhook = claimed.delivery, claimed.event, claimed.webhook
        outgoing, skip = None, None
        if webhook is None:
            skip = "the webhook was deleted"
        elif webhook.status != WebhookStatus.ACTIVE:
            skip = f"the webhook is inactive ({webhook.inactive_reason or 'deactivated'})"
        else:
            secrets = [self.box.decrypt(webhook.secret)]
            until = webhook.previous_secret_until
            if webhook.previous_secret and until is not None and until > now:
                secrets.append(self.box.decrypt(webhook.previous_secret))
            outgoing = Outgoing(
                delivery_id=delivery.id,
                method=webhook.method,
                url=webhook.url,
                headers=webhook.headers or {},
                body=body_bytes(event.payload),
                secrets=tuple(secrets),
                credential=credential_of(loaded.get(webhook.credential_id or ""), webhook.url),
            )
        return Job(
            delivery_id=delivery.id,
            organization_id=delivery.organization_id,
            webhook_id=delivery.webhook_id,
            event_id=event.id,
            event_type=event.type,
            entity_id=event.entity_id,
            attempt=delivery.attempt_count + 1,
            initiated=event.created_time,
            token=token,
            outgoing=outgoing,
            skip=skip,
        )

    async def _send_and_record(self, job: Job) -> None:
        try:
            answer = None
            sent = self.clock.now()
            if job.outgoing is not None:
                answer = await self.client.send(job.outgoing, sent)
            try:
                await self._record(job, answer, sent)
            except Exception:
                # Its lease runs out and it is sent again: at least once.
                log.exception("webhook attempt not recorded", extra={"delivery": job.delivery_id})
        finally:
            left = self.in_flight.get(job.webhook_id, 1) - 1
            if left:
                self.in_flight[job.webhook_id] = left
            else:
                self.in_flight.pop(job.webhook_id, None)
            self._freed.set()

    async def _record(self, job: Job, answer: Answer | None, sent: datetime) -> None:
        now = self.clock.now()
        token = job.token
        async with self.sessionmaker() as session, session.begin():
            if answer is None:
                await repository.settle_delivery(
                    session,
                    job.delivery_id,
                    token,
                    now,
                    status=DeliveryStatus.FAILED,
                    last_error=job.skip,
                )
                return
            assert job.outgoing is not None
            WEBHOOK_ATTEMPTS.labels(answer.verdict.value).inc()
            await repository.add_tracking(session, self._tracking(job, answer, sent, now))
            error = answer.error or (f"HTTP {answer.status}" if answer.status else None)
            if answer.verdict is Verdict.SUCCEEDED:
                await repository.settle_delivery(
                    session,
                    job.delivery_id,
                    token,
                    now,
                    status=DeliveryStatus.SUCCEEDED,
                    attempt_count=job.attempt,
                    last_error=None,
                )
                await repository.clear_webhook_failing(session, job.webhook_id, now)
                return
            if answer.verdict is Verdict.GONE:
                await repository.settle_delivery(
                    session,
                    job.delivery_id,
                    token,
                    now,
                    status=DeliveryStatus.FAILED,
                    attempt_count=job.attempt,
                    last_error="gone (410)",
                )
                await repository.deactivate_webhook(session, job.webhook_id, "gone (410)", now)
                return
            delay = retry.next_delay(
                job.attempt,
                self.rng,
                retry_after=answer.retry_after,
                max_retry_after=self.config.max_retry_after_seconds,
            )
            if delay is None:
                values: dict[str, Any] = {
                    "status": DeliveryStatus.FAILED,
                    "last_error": f"no success after {job.attempt} attempts: {error}",
                }
            else:
                values = {
                    "due_at": now + timedelta(seconds=delay),
                    "last_error": error,
                }
            await repository.settle_delivery(
                session, job.delivery_id, token, now, attempt_count=job.attempt, **values
            )
            since = await repository.mark_webhook_failing(session, job.webhook_id, now)
            if now - since >= timedelta(hours=self.config.inactive_after_hours):
                reason = f"failing since {since.isoformat()}"
                await repository.deactivate_webhook(session, job.webhook_id, reason, now)

    @staticmethod
    def _tracking(job: Job, answer: Answer, sent: datetime, now: datetime) -> dict[str, Any]:
        assert job.outgoing is not None
        return {
            "id": new_id(TRACKING_PREFIX),
            "organization_id": job.organization_id,
            "delivery_id": job.delivery_id,
            "webhook_id": job.webhook_id,
            "entity_id": job.entity_id,
            "event_type": job.event_type,
            "attempt": job.attempt,
            "url": job.outgoing.url,
            "method": job.outgoing.method,
            "request": job.outgoing.body.decode("utf-8", "replace"),
            "request_headers": answer.request_headers,
            "status": answer.status,
            "response": answer.response,
            "response_headers": answer.response_headers,
            "error": answer.error,
            "duration": answer.duration_ms,
            "initiated_time": job.initiated,
            "sent_time": sent,
            "created_time": now,
            "updated_time": now,
        }
