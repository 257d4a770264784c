"""The delivery loop: claim in one short transaction, send with no transaction open, record
the outcomes in another. Nothing holds a database lock across a network call.

Each claimed message is sent on its own and its outcome recorded as soon as it is known (with
whatever others came in meanwhile), so no message waits for the slowest of its claim. A worker
holds at most `batches_in_flight * batch_size` messages claimed and not yet recorded, and is
sending at most `in_flight_per_key` of any one delivery key (an organization and its credential,
or the server-wide transport): a silent server ties up only its own key's share, and the worker
goes on claiming for the others while it is freed (see delivery/repository.py for the claim's
fairness). A key's next claim overlaps the end of its sends under way: it is made once half of
its share is free, not after the last claim's outcomes are all recorded. A worker killed outright
can therefore leave at most `batches_in_flight * batch_size` messages sent but not recorded (sent
again, as duplicates, once their leases run out)."""

import asyncio
import importlib.metadata
import logging
import os
import random
import socket
import ssl
import threading
import time
from asyncio import FIRST_COMPLETED
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core import event_loop
from postroom.core.clock import Clock, SystemClock
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.core.metrics import ATTEMPTS, DELIVERY_SECONDS, MESSAGES_FAILED, MESSAGES_SENT
from postroom.credentials.service import DeliveryCredential
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.delivery import service
from postroom.delivery.pacing import max_lateness
from postroom.delivery.transports.base import (
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    Receipt,
    TransientError,
    Transport,
)
from postroom.delivery.transports.eml import EmlFileTransport
from postroom.delivery.transports.http import HttpLimits, load_http_stack
from postroom.delivery.transports.mailgun import MailgunTransport
from postroom.delivery.transports.postmark import PostmarkTransport
from postroom.delivery.transports.registry import TransportRegistry
from postroom.delivery.transports.sendgrid import SendGridTransport
from postroom.delivery.transports.ses import SesTransport
from postroom.delivery.transports.simulator import SimulatorTransport
from postroom.delivery.transports.smtp import SmtpConfig, SmtpLimits, SmtpTransport
from postroom.files import service as files
from postroom.idempotency import service as idempotency
from postroom.messages.models import MessageStatus
from postroom.settings import Settings
from postroom.webhooks import dispatcher as webhooks

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 600
# How long the recorder waits for more outcomes to record together with the first.
RECORD_GATHER_SECONDS = 0.05
# How often a worker writes its heartbeat (the workers table); /readyz and the
# postroom_workers_live gauge count a worker live for POSTROOM_DELIVERY__WORKER_STALE_SECONDS.
HEARTBEAT_SECONDS = 5.0


def _version() -> str:
    try:
        return importlib.metadata.version("postroom")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _observe(results: list[service.Result], statuses: list[MessageStatus | None]) -> None:
    for result, status in zip(results, statuses, strict=True):
        if status is None:
            continue  # its pacing slot was missed: not an attempt
        transport = result.job.transport
        assert not isinstance(result.outcome, service.SlotMissed)  # no status for those
        ATTEMPTS.labels(transport, service.outcome_of(result.outcome).value).inc()
        if status == MessageStatus.SENT:
            MESSAGES_SENT.labels(transport).inc()
            waited = (result.finished_at - result.job.message.date).total_seconds()
            DELIVERY_SECONDS.observe(max(0.0, waited))
        elif status == MessageStatus.FAILED:
            MESSAGES_FAILED.labels(transport).inc()


def smtp_limits(settings: Settings, *, checked: bool = True) -> SmtpLimits:
    """The deadlines of each step; `checked`: connect only where the destination policy
    allows (a tenant's credential; the operator's own POSTROOM_SMTP_URL is not checked)."""
    delivery = settings.delivery
    context = None
    if delivery.smtp_ca_file is not None:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(delivery.smtp_ca_file))
    return SmtpLimits(
        connections=delivery.connections_per_credential,
        connect_timeout=delivery.connect_timeout_seconds,
        greeting_timeout=delivery.smtp_greeting_timeout_seconds,
        handshake_timeout=delivery.smtp_handshake_timeout_seconds,
        timeout=delivery.send_timeout_seconds,
        data_end_timeout=delivery.smtp_data_end_timeout_seconds,
        message_timeout=delivery.message_timeout_seconds,
        tls_context=context,
        destinations=settings.destination_policy() if checked else None,
    )


def http_limits(settings: Settings) -> HttpLimits:
    delivery = settings.delivery
    return HttpLimits(
        connect_timeout=delivery.connect_timeout_seconds,
        timeout=delivery.send_timeout_seconds,
        message_timeout=delivery.message_timeout_seconds,
        connections=delivery.connections_per_credential,
    )


def default_transport(settings: Settings) -> Transport:
    """POSTROOM_SMTP_URL's server, or else .eml files in the data directory."""
    if settings.smtp_url is not None:
        config = SmtpConfig.from_url(settings.smtp_url.get_secret_value())
        return SmtpTransport(config, smtp_limits(settings, checked=False))
    return EmlFileTransport(settings.data_dir / "outbox")


def credential_transport(credential: DeliveryCredential, settings: Settings) -> Transport:
    """The transport of the credential's type, configured by it (and by the providers' URLs)."""
    public, secrets, providers = credential.settings, credential.secrets, settings.providers
    match credential.type:
        case "smtp":
            auth = public["auth"]
            config = SmtpConfig(
                host=public["host"],
                port=public["port"],
                encryption=public["encryption"],
                auth=auth["type"],
                username=auth.get("username"),
                password=secrets.get("password"),
            )
            return SmtpTransport(config, smtp_limits(settings))
        case "sendgrid":
            return SendGridTransport(
                secrets["api_key"], providers.sendgrid_url, http_limits(settings)
            )
        case "mailgun":
            base_url = (
                providers.mailgun_eu_url if public["region"] == "eu" else providers.mailgun_url
            )
            return MailgunTransport(
                secrets["api_key"], public["domain"], base_url, http_limits(settings)
            )
        case "postmark":
            return PostmarkTransport(
                secrets["server_token"], providers.postmark_url, http_limits(settings)
            )
        case "aws-ses":
            return SesTransport(
                access_key=public["access_key"],
                secret_key=secrets["secret_key"],
                region=public["region"],
                endpoint=providers.ses_endpoint,
                limits=http_limits(settings),
                configuration_set=public.get("configuration_set"),
            )
        case "simulator":
            return SimulatorTransport()
    raise PermanentError(f"credential type {credential.type} has no transport")


@dataclass
class InFlight:
    """What a running worker holds: messages claimed and not yet recorded (at most its
    capacity), and of those the ones still being sent, by delivery key (at most `share`)."""

    share: int
    unrecorded: int = 0
    sending: Counter[str] = field(default_factory=Counter)
    # Set when a claim may find more than before: a key's share half free, outcomes recorded.
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    def claimed(self, key: str) -> None:
        self.unrecorded += 1
        self.sending[key] += 1

    def sent(self, key: str) -> None:
        self.sending[key] -= 1
        left = self.sending[key]
        if left <= 0:
            del self.sending[key]
        if self.share - left == self._half:
            self.freed.set()

    def recorded(self, count: int) -> None:
        self.unrecorded -= count
        self.freed.set()

    def taken(self) -> dict[str, int]:
        """Each key's share as the next claim is to see it: one with less than half of it free
        counts as full for now, so that a busy key is claimed for in halves of its share, not
        one message at a time as each of its sends ends (a claim costs the same for 1 as for
        50)."""
        return {
            key: count if self.share - count >= self._half else self.share
            for key, count in self.sending.items()
        }

    @property
    def _half(self) -> int:
        return (self.share + 1) // 2


class Worker:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        box: SecretBox,
        transports: TransportRegistry,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.box = box
        self.transports = transports
        self.blobs = files.blob_store(settings)
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        host = socket.gethostname()
        self.name = name or f"{host}:{os.getpid()}:{new_id('')[-6:]}"
        self.record = service.WorkerRecord(
            id=self.name,
            host=host,
            pid=os.getpid(),
            version=_version(),
            started_at=self.clock.now(),
        )
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        # No single send may outlive the lease, or another worker would claim it meanwhile.
        self.send_deadline = settings.delivery.lease_seconds * 0.8

    async def run_once(self) -> int:
        """One batch, claimed, sent and recorded: how many messages were claimed (0 when none
        was due)."""
        claim = await self._claim()
        await self._send_and_record(claim)
        return len(claim.jobs) + claim.settled

    async def _claim(
        self, limit: int | None = None, in_flight: dict[str, int] | None = None
    ) -> service.Claim:
        async with self.sessionmaker() as session, session.begin():
            return await service.claim(
                session,
                now=self.clock.now(),
                worker=self.name,
                token=new_id("lease_"),
                settings=self.settings.delivery,
                box=self.box,
                default_transport=self.transports.default.name,
                blobs=self.blobs,
                clock=self.clock,
                limit=limit,
                in_flight=in_flight,
                bounce_domain=self.settings.events.bounce_domain,
                public_url=self.settings.public_url(),
            )

    async def _send_and_record(self, claim: service.Claim) -> None:
        if not claim.jobs:
            return
        results = await asyncio.gather(*(self._deliver(job) for job in claim.jobs))
        await self.record_outcomes(list(results))

    async def record_outcomes(self, results: list[service.Result]) -> list[MessageStatus | None]:
        """Records the outcomes in one transaction, or, if the database refuses that, one by
        one in another (service.record_one_by_one); the status each message is left in."""
        delivery = self.settings.delivery
        try:
            async with self.sessionmaker() as session, session.begin():
                statuses = await service.record(session, results, delivery, self.rng)
        except service.RecordRefused as refused:
            log.warning(
                "delivery outcomes refused together; recording them one by one",
                extra={"error": str(refused), "count": len(results)},
            )
            async with self.sessionmaker() as session, session.begin():
                statuses = await service.record_one_by_one(session, results, delivery, self.rng)
        _observe(results, statuses)
        return statuses

    async def housekeeping(self) -> None:
        """Drops Idempotency-Key answers past their retention, and the rows of workers that
        died long ago."""
        async with self.sessionmaker() as session, session.begin():
            await idempotency.purge_expired(session, self.clock.now())
            await service.forget_dead_workers(session, self.clock.now())

    async def heartbeat(self) -> None:
        """Says this worker is alive, now (by its clock): its row in the workers table."""
        async with self.sessionmaker() as session, session.begin():
            await service.worker_seen(session, self.record, self.clock.now())

    async def _beat(self) -> None:
        """A heartbeat every heartbeat_seconds, on its own: the loop may wait a long time (for
        sends to free a share), and a worker that waits is still alive."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.heartbeat()
            except Exception:
                # The database may be restarting; the next beat tries again.
                log.exception("heartbeat not recorded", extra={"worker": self.name})

    async def _sign_off(self) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                await service.worker_stopped(session, self.name)
        except Exception:
            # Its row goes stale instead: no longer counted live after the stale window.
            log.exception("worker row not removed", extra={"worker": self.name})

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; the sends under way are finished and recorded first. Raises if
        the worker cannot even write its first heartbeat (its database is not one it can use)."""
        await self.heartbeat()
        beating = asyncio.create_task(self._beat())
        log.info("delivery worker started", extra={"worker": self.name})
        next_housekeeping = 0.0
        await load_http_stack()
        delivery = self.settings.delivery
        capacity = delivery.batches_in_flight * delivery.batch_size
        in_flight = InFlight(delivery.in_flight_per_key)
        freed = in_flight.freed
        sending: set[asyncio.Task[None]] = set()
        outcomes: asyncio.Queue[service.Result] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_as_they_come(outcomes, in_flight))
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                    try:
                        await self.housekeeping()
                    except Exception:
                        log.exception("housekeeping failed", extra={"worker": self.name})
                freed.clear()
                free = capacity - in_flight.unrecorded
                if free < min(delivery.batch_size, capacity - free + 1):
                    # Claims come in whole batches (a claim costs the same for 1 message as
                    # for 50), unless little is in flight: wait until a batch's room is free.
                    await self._until(freed, stopping, None)
                    continue
                asked = min(delivery.batch_size, free)
                try:
                    claim = await self._claim(asked, in_flight.taken())
                except Exception:
                    # The database may be restarting; the leases keep every message safe.
                    log.exception("delivery claim failed; retrying", extra={"worker": self.name})
                    claim = service.Claim([], 0)
                for job in claim.jobs:
                    in_flight.claimed(job.key)
                    send = asyncio.create_task(self._deliver_into(job, outcomes, in_flight))
                    sending.add(send)
                    send.add_done_callback(sending.discard)
                if len(claim.jobs) + claim.settled < asked:
                    # No more due now (or only keys whose share is taken): wait a poll interval,
                    # or less if a share is half free again or an outcome is recorded meanwhile
                    # (a retry may be due), rather than ask again at once for nothing.
                    await self._until(freed, stopping, delivery.poll_seconds)
        finally:
            stopping.cancel()
            if sending:
                await asyncio.wait(sending)
            await outcomes.join()
            recorder.cancel()
            beating.cancel()
        await self._sign_off()
        log.info("delivery worker stopped", extra={"worker": self.name})

    @staticmethod
    async def _until(
        freed: asyncio.Event, stopping: "asyncio.Task[bool]", seconds: float | None
    ) -> None:
        waiting = asyncio.create_task(freed.wait())
        try:
            await asyncio.wait({waiting, stopping}, timeout=seconds, return_when=FIRST_COMPLETED)
        finally:
            waiting.cancel()

    async def _deliver_into(
        self, job: service.Job, outcomes: "asyncio.Queue[service.Result]", in_flight: InFlight
    ) -> None:
        result = await self._deliver(job)
        in_flight.sent(job.key)
        outcomes.put_nowait(result)

    async def _record_as_they_come(
        self,
        outcomes: "asyncio.Queue[service.Result]",
        in_flight: InFlight,
    ) -> None:
        """Records each outcome as it comes in, together with any that come in meanwhile: up to
        a batch, gathered for at most RECORD_GATHER_SECONDS while other sends are under way
        (a record costs about the same for one outcome as for fifty)."""
        batch = self.settings.delivery.batch_size
        while True:
            results = [await outcomes.get()]
            gather_until = time.monotonic() + RECORD_GATHER_SECONDS
            while len(results) < batch:
                if not outcomes.empty():
                    results.append(outcomes.get_nowait())
                    continue
                left = gather_until - time.monotonic()
                if left <= 0 or not in_flight.sending:
                    break  # nothing else is being sent: record now
                try:
                    results.append(await asyncio.wait_for(outcomes.get(), left))
                except TimeoutError:
                    break
            try:
                await self.record_outcomes(results)
            except Exception:
                # The database may be restarting: the leases run out and the messages are
                # claimed again, their attempts marked `unknown`.
                log.exception(
                    "delivery outcomes not recorded; their leases will run out",
                    extra={"worker": self.name},
                )
            finally:
                for _ in results:
                    outcomes.task_done()
                in_flight.recorded(len(results))

    def _transport(self, job: service.Job) -> Transport:
        credential = job.credential
        if credential is None:
            return self.transports.default
        return self.transports.get(
            credential.id,
            credential.version,
            lambda: credential_transport(credential, self.settings),
        )

    async def _deliver(self, job: service.Job) -> service.Result:
        if job.not_before is not None and job.credential is not None:
            # The credential's send slot (delivery/pacing.py), within the pacing horizon.
            with suppress(DeliveryError):  # built before the wait, not on the slot's time
                self._transport(job)
            wait = (job.not_before - self.clock.now()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            late = self.clock.now() - job.not_before
            if late > max_lateness(job.credential.max_send_rate or 1):
                return service.Result(
                    job, service.SlotMissed(late.total_seconds()), self.clock.now(), 0
                )
        started = time.monotonic()
        outcome: Receipt | DeliveryError
        try:
            async with asyncio.timeout(self.send_deadline):
                outcome = await self._transport(job).send(job.message)
        except DeliveryError as error:
            outcome = error
        except TimeoutError:
            outcome = OutcomeUnknownError(f"no outcome within {self.send_deadline:.0f}s")
        except Exception as error:
            log.exception("unexpected error while sending", extra={"message_id": job.message.id})
            outcome = TransientError(f"internal error while sending ({type(error).__name__})")
        duration_ms = round((time.monotonic() - started) * 1000)
        log.info(
            "delivery attempt",
            extra={
                "message_id": job.message.id,
                "organization_id": job.organization_id,
                "attempt": job.attempt_number,
                "outcome": service.outcome_of(outcome).value,
                "code": outcome.code,
                "duration_ms": duration_ms,
            },
        )
        return service.Result(job, outcome, self.clock.now(), duration_ms)


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, clock: Clock | None = None
) -> None:
    """A worker with its own engine and transports, until `stop` is set: the mail loop and,
    beside it as its own task, the webhook dispatcher (which never waits for mail, nor mail
    for it)."""
    engine = create_engine(settings.resolved_database_url, pool_size=3)
    transports = TransportRegistry(default_transport(settings))
    sessionmaker = create_sessionmaker(engine)
    box = SecretBox(settings.stored_secret())
    worker = Worker(
        sessionmaker=sessionmaker, settings=settings, box=box, transports=transports, clock=clock
    )
    webhook_client = webhooks.new_client(settings)
    dispatcher = webhooks.Dispatcher(
        sessionmaker=sessionmaker, settings=settings, box=box, client=webhook_client, clock=clock
    )
    dispatching = asyncio.create_task(_dispatch(dispatcher, stop))
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await dispatching
        await webhook_client.aclose()
        await transports.aclose()
        await engine.dispose()


async def _dispatch(dispatcher: "webhooks.Dispatcher", stop: asyncio.Event) -> None:
    """The dispatcher until `stop`; if it fails, logged and started again, mail going on."""
    while not stop.is_set():
        try:
            await dispatcher.run(stop)
        except Exception:
            log.exception("webhook dispatcher failed; restarting")
            await asyncio.sleep(dispatcher.config.poll_seconds)


class EmbeddedWorker:
    """The worker of `postroom serve`, in a thread with its own event loop, so building and
    sending mail never stalls the API's loop (and a stalled send never stalls a request).

    If it dies (anything but a stop asked for), `failure` says why and `on_death` is called,
    from the worker's thread: `serve` then shuts the API down rather than go on accepting mail
    nobody delivers, and /readyz answers 503 meanwhile."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        on_death: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.on_death = on_death
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="postroom-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=30)

    def _main(self) -> None:
        try:
            event_loop.run(self._run())
        except BaseException as error:  # cancelled (killed) counts as died too
            self.failure = error
            log.critical("delivery worker died", exc_info=error)
            if self.on_death is not None:
                self.on_death(error)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await run_worker(self.settings, self._stop, clock=self.clock)

    def stop(self, timeout: float | None = None) -> None:
        """Asks the worker to finish its batch and waits for it (from any thread)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with suppress(RuntimeError):  # its loop closed meanwhile: it has stopped already
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
