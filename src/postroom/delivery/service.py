"""Delivery after `outbox`: claim due messages (opening an attempt for each, before any network
call), then record what each send produced: sent, retry later, or failed."""

import asyncio
import logging
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.bounce_address import bounce_address
from postroom.core.clock import Clock
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.core.text import storable
from postroom.core.unsubscribe_link import unsubscribe_path
from postroom.credentials import service as credentials
from postroom.credentials.models import CredentialStatus
from postroom.credentials.service import DeliveryCredential
from postroom.delivery import repository, suppression
from postroom.delivery.mime import AttachmentFile, OutgoingMessage, build_mime
from postroom.delivery.models import DeliveryAttempt, Outcome
from postroom.delivery.pacing import plan_slots
from postroom.delivery.retry import HELD, GiveUp, decide
from postroom.delivery.schemas import DeliveryAttemptRead
from postroom.delivery.transports.base import (
    DeliveryError,
    OutcomeUnknownError,
    Receipt,
    TransientError,
)
from postroom.delivery.transports.correlation import provider_id
from postroom.errors import Conflict
from postroom.files import service as files
from postroom.files.blobstore import BlobStorage
from postroom.files.service import FileContent
from postroom.messages import service as messages
from postroom.messages.models import MessageStatus
from postroom.settings import DeliverySettings
from postroom.webhooks import service as webhooks
from postroom.webhooks.events import EventToEmit, EventType

log = logging.getLogger(__name__)

MAX_BODY = 10_000  # characters of a service's answer kept per attempt and on the message


@dataclass(frozen=True)
class Job:
    """One claimed message and its open attempt."""

    message: OutgoingMessage
    organization_id: str
    attempt_id: str
    attempt_number: int
    lease_token: str
    credential: DeliveryCredential | None
    transport: str
    key: str = ""
    """Its delivery key (organization and credential): the share of the worker it counts in."""
    not_before: datetime | None = None
    """The send slot its credential's rate gave it, when that is later than the claim."""


@dataclass(frozen=True)
class SlotMissed:
    """Not sent: the worker could not start the send in time for its credential's slot."""

    lateness: float


@dataclass(frozen=True)
class Result:
    job: Job
    outcome: Receipt | DeliveryError | SlotMissed
    finished_at: datetime
    duration_ms: int


@dataclass(frozen=True)
class Claim:
    jobs: list[Job]
    settled: int  # claimed messages failed at once (held, out of attempts, unusable credential)


def _attachments(
    message: messages.MessageToSend, found: dict[str, FileContent]
) -> tuple[AttachmentFile, ...] | str:
    """The message's attachments as files to send, or why they cannot be sent."""
    attached: list[AttachmentFile] = []
    for reference in message.attachments:
        file_id = files.attached_file_id(reference)
        if file_id is None:
            kind = reference.get("resourceType")
            return f"attachment type '{kind}' is not supported; nothing was sent"
        file = found.get(file_id)
        if file is None:
            return f"attached file {file_id} no longer exists; nothing was sent"
        attached.append(AttachmentFile(file.name, file.mime, file.size, file.content))
    return tuple(attached)


def _unsubscribe_headers(message: messages.MessageToSend, url: str | None) -> dict[str, str]:
    """RFC 8058's pair, when the message has an unsubscribe URL (its own, or `url`: hosted)."""
    url = message.unsubscribe_url or url
    if not url:
        return {}
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _hosted_unsubscribe(
    box: SecretBox, message: messages.MessageToSend, public_url: str | None
) -> str | None:
    if not message.hosted_unsubscribe or not public_url:
        return None
    return f"{public_url.rstrip('/')}/{unsubscribe_path(box, message.id)}"


def _outgoing(
    message: messages.MessageToSend,
    attachments: tuple[AttachmentFile, ...],
    return_path: str | None,
    unsubscribe_url: str | None = None,
) -> OutgoingMessage:
    return OutgoingMessage(
        id=message.id,
        sender=message.from_address,
        to=tuple(message.to_addresses),
        cc=tuple(message.cc_addresses),
        bcc=tuple(message.bcc_addresses),
        subject=message.subject,
        text=message.text,
        html=message.html,
        # A scheduled message is dated when it was due to go, not when it was queued.
        date=message.scheduled_at or message.initiated_at or message.created_at,
        attachments=attachments,
        sender_name=message.sender_name,
        metadata=dict(message.metadata_ or {}),
        reply_to=tuple(message.reply_to or ()),
        headers={**(message.headers or {}), **_unsubscribe_headers(message, unsubscribe_url)},
        return_path=return_path,
    )


def _credential_id(message: messages.MessageToSend) -> str | None:
    """The credential the message names, or else the one its delivery setting named."""
    return message.credential_hash or message.sender_credential_id


def _refusal(
    message: messages.MessageToSend,
    attempt: int,
    interrupted: set[str],
    credential: DeliveryCredential | None,
    settings: DeliverySettings,
) -> str | None:
    """Why a claimed message must not be sent at all, if it must not."""
    if attempt > settings.max_attempts:
        return (
            f"gave up after {attempt - 1} attempts; the last one was cut off "
            "and may have been delivered"
        )
    if message.id in interrupted and settings.unknown_outcome == "hold":
        return HELD
    if _credential_id(message) and credential is None:
        return f"credential {_credential_id(message)} no longer exists"
    if credential is not None and credential.status != CredentialStatus.ACTIVE:
        return f"credential {credential.id} is {credential.status}; nothing was sent"
    return None


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    token: str,
    settings: DeliverySettings,
    box: SecretBox,
    default_transport: str,
    blobs: BlobStorage,
    clock: Clock | None = None,
    limit: int | None = None,
    in_flight: Mapping[str, int] | None = None,
    bounce_domain: str | None = None,
    public_url: str | None = None,
) -> Claim:
    """`now` is when the claim began; `clock`, when given, is read again for send slots, which
    must not start before the claim's lock was granted (delivery/pacing.py).

    Up to `limit` messages (default: a batch). With `in_flight` (the claiming worker's messages
    being sent, by delivery key), no key gets more than its share of the worker
    (settings.in_flight_per_key); without, this claim is the only one under way.

    With `bounce_domain`, SMTP sends get the message's own bounce address as their envelope
    sender, for `postroom bounces` to take the bounces to (events/bounces.py). `public_url`:
    the API's address as recipients reach it, for hosted unsubscribe links."""
    batch = settings.batch_size if limit is None else limit
    claimed = await repository.claim_due(
        session,
        now=now,
        lease_until=now + timedelta(seconds=settings.lease_seconds),
        token=token,
        limit=batch,
        per_key=None if in_flight is None else settings.in_flight_per_key,
        allowance=None
        if in_flight is None
        else {k: settings.in_flight_per_key - n for k, n in in_flight.items()},
    )
    if not claimed:
        return Claim([], 0)
    ids = [c.message_id for c in claimed]
    # Only a message claimed before can have an attempt its worker left open.
    again = [c.message_id for c in claimed if c.attempt_count > 1]
    interrupted = await repository.close_interrupted_attempts(session, again, now)
    found_messages = await messages.messages_to_send(session, ids)
    # A queue row whose message left `outbox` by other means (an operator's SQL) sends nothing.
    stale = [
        c
        for c in claimed
        if (m := found_messages.get(c.message_id)) is None or m.status != MessageStatus.OUTBOX
    ]
    await repository.dequeue(session, [(c.message_id, token) for c in stale])
    claims = [(found_messages[c.message_id], c) for c in claimed if c not in stale]
    wanted = {c for c in (_credential_id(m) for m, _ in claims) if c}
    found = await credentials.load_for_delivery(session, wanted, box)
    file_ids = {
        f for m, _ in claims for a in m.attachments if (f := files.attached_file_id(a)) is not None
    }
    attached_files = await files.load_for_delivery(session, file_ids, blobs)

    ready: list[tuple[messages.MessageToSend, repository.Claimed, DeliveryCredential | None]] = []
    attachments_of: dict[str, tuple[AttachmentFile, ...]] = {}
    refused: list[messages.DeliveryAnswer] = []
    for message, claimed_row in claims:
        credential_id = _credential_id(message)
        credential = found.get(credential_id) if credential_id else None
        refusal = _refusal(message, claimed_row.attempt_count, interrupted, credential, settings)
        attachments = _attachments(message, attached_files)
        if refusal is not None or isinstance(attachments, str):
            reason = refusal or str(attachments)
            refused.append(
                messages.DeliveryAnswer(
                    message.id, message.organization_id, MessageStatus.FAILED, None, reason, now
                )
            )
            continue
        ready.append((message, claimed_row, credential))
        attachments_of[message.id] = attachments
    left_out = await suppression.blocked_recipients(session, [m for m, _, _ in ready], now)
    suppressed, suppressed_attempts = _suppress(ready, left_out, now, worker, default_transport)
    ready = [r for r in ready if r[0].id not in suppressed_attempts]
    slots, released = await _pace(
        session,
        [(m, c) for m, _, c in ready],
        clock=clock,
        now=now,
        token=token,
        settings=settings,
    )

    jobs: list[Job] = []
    attempts: list[dict[str, Any]] = []
    for message, claimed_row, credential in ready:
        if message.id in released:
            continue
        slot = slots.get(message.id)
        not_before = slot if slot is not None and slot > now else None
        attempt_id = new_id("mail_att_")
        transport = credential.type if credential else default_transport
        # Only SMTP carries a Return-Path of ours; an ESP reports bounces by its own webhook.
        return_path = (
            bounce_address(box, message.id, bounce_domain)
            if bounce_domain and transport == "smtp"
            else None
        )
        attempts.append(
            {
                "id": attempt_id,
                "message_id": message.id,
                "number": claimed_row.attempt_count,
                "transport": transport,
                "credential_id": credential.id if credential else None,
                "worker": worker,
                "started_at": not_before or now,
                "suppressed": left_out.get(message.id),
            }
        )
        jobs.append(
            Job(
                message=suppression.without(
                    _outgoing(
                        message,
                        attachments_of[message.id],
                        return_path,
                        _hosted_unsubscribe(box, message, public_url),
                    ),
                    left_out.get(message.id, ()),
                ),
                organization_id=message.organization_id,
                attempt_id=attempt_id,
                attempt_number=claimed_row.attempt_count,
                lease_token=token,
                credential=credential,
                transport=transport,
                key=claimed_row.key,
                not_before=not_before,
            )
        )
    await repository.open_attempts(session, attempts)
    await repository.open_attempts(session, list(suppressed_attempts.values()))
    await _settle(
        session,
        [(a, token) for a in (*refused, *suppressed)],
        {m: (row["id"], Outcome.SUPPRESSED) for m, row in suppressed_attempts.items()},
    )
    await repository.release(session, list(released.values()))
    return Claim(jobs, len(refused) + len(suppressed) + len(stale))


def _suppress(
    ready: Sequence[tuple[messages.MessageToSend, repository.Claimed, DeliveryCredential | None]],
    left_out: Mapping[str, list[str]],
    now: datetime,
    worker: str,
    default_transport: str,
) -> tuple[list[messages.DeliveryAnswer], dict[str, dict[str, Any]]]:
    """The messages with no recipient left once the blocklist's are left out: each one's
    `failed` answer, and its attempt (outcome suppressed, closed at once) by message id."""
    answers: list[messages.DeliveryAnswer] = []
    attempts: dict[str, dict[str, Any]] = {}
    for message, claimed_row, credential in ready:
        blocked = left_out.get(message.id)
        if not blocked or not suppression.nothing_left(message, blocked):
            continue
        reason = storable(
            "every recipient is on the blocklist, nothing was sent: " + ", ".join(blocked),
            MAX_BODY,
        )
        answers.append(
            messages.DeliveryAnswer(
                message.id, message.organization_id, MessageStatus.FAILED, None, reason, now
            )
        )
        attempts[message.id] = {
            "id": new_id("mail_att_"),
            "message_id": message.id,
            "number": claimed_row.attempt_count,
            "transport": credential.type if credential else default_transport,
            "credential_id": credential.id if credential else None,
            "worker": worker,
            "started_at": now,
            "outcome": Outcome.SUPPRESSED,
            "finished_at": now,
            "duration_ms": 0,
            "response_body": reason,
            "suppressed": blocked,
        }
    return answers, attempts


async def _settle(
    session: AsyncSession,
    answers: Sequence[tuple[messages.DeliveryAnswer, str]],
    attempts: Mapping[str, tuple[str, Outcome]] | None = None,
) -> None:
    """Writes each final answer (sent, failed) whose lease (token) is still held, taking its
    message out of the queue, and emits its event. `attempts`: the attempt (id, outcome) that
    produced the answer, by message id."""
    held = await repository.dequeue(session, [(a.message_id, token) for a, token in answers])
    recorded = [a for a, _ in answers if a.message_id in held]
    await messages.record_delivery(session, recorded)
    await _emit(session, recorded, attempts or {})


def _event_type(answer: messages.DeliveryAnswer, outcome: Outcome | None) -> EventType:
    if answer.status == MessageStatus.SENT:
        return EventType.SENT
    if answer.status == MessageStatus.FAILED:
        return EventType.FAILED
    return EventType.OUTCOME_UNKNOWN if outcome == Outcome.UNKNOWN else EventType.ATTEMPT_FAILED


async def _emit(
    session: AsyncSession,
    answers: Sequence[messages.DeliveryAnswer],
    attempts: Mapping[str, tuple[str, Outcome]],
) -> None:
    """The webhook event of each recorded answer, in the transaction that recorded it."""
    by_organization: dict[str, list[messages.DeliveryAnswer]] = {}
    for answer in answers:
        by_organization.setdefault(answer.organization_id, []).append(answer)
    for organization_id, theirs in by_organization.items():
        hooks = await webhooks.listeners(session, organization_id)
        if not hooks:
            continue
        ids = [attempts[a.message_id][0] for a in theirs if a.message_id in attempts]
        loaded = {
            a.id: DeliveryAttemptRead.of(a).model_dump(mode="json", by_alias=True)
            for a in await repository.attempts_by_id(session, ids)
        }
        events = []
        for answer in theirs:
            attempt_id, outcome = attempts.get(answer.message_id, (None, None))
            events.append(
                EventToEmit(
                    _event_type(answer, outcome),
                    answer.message_id,
                    loaded.get(attempt_id) if attempt_id else None,
                )
            )
        await webhooks.emit(session, organization_id, hooks, events, max(a.at for a in theirs))


async def _pace(
    session: AsyncSession,
    ready: list[tuple[messages.MessageToSend, DeliveryCredential | None]],
    *,
    clock: Clock | None,
    now: datetime,
    token: str,
    settings: DeliverySettings,
) -> tuple[dict[str, datetime], dict[str, dict[str, Any]]]:
    """Send slots for the messages of rate-limited credentials (delivery/pacing.py): the slot of
    each message kept, and the release row of each one that goes back to the queue."""
    paced: dict[str, list[messages.MessageToSend]] = {}
    rates: dict[str, float] = {}
    for message, credential in ready:
        if credential is not None and credential.max_send_rate:
            paced.setdefault(credential.id, []).append(message)
            rates[credential.id] = credential.max_send_rate
    slots: dict[str, datetime] = {}
    released: dict[str, dict[str, Any]] = {}
    # In id order, so that concurrent claims lock pacing rows in one order and cannot deadlock.
    for credential_id in sorted(paced):
        theirs = paced[credential_id]
        next_free = await repository.lock_pacing(session, credential_id, now)
        plan = plan_slots(
            next_free,
            clock.now() if clock is not None else now,
            rates[credential_id],
            len(theirs),
            settings.pacing_horizon_seconds,
        )
        await repository.set_pacing(session, credential_id, plan.next_free)
        slots.update((m.id, slot) for m, slot in zip(theirs, plan.slots, strict=False))
        for message, due in zip(theirs[len(plan.slots) :], plan.later, strict=True):
            released[message.id] = {"b_id": message.id, "b_token": token, "b_due_at": due}
    return slots, released


def outcome_of(outcome: Receipt | DeliveryError) -> Outcome:
    """An attempt's outcome as the API, the log line and the metric all spell it."""
    if isinstance(outcome, Receipt):
        return Outcome.SENT
    if isinstance(outcome, OutcomeUnknownError):
        return Outcome.UNKNOWN
    return Outcome.TRANSIENT if isinstance(outcome, TransientError) else Outcome.PERMANENT


class RecordRefused(Exception):
    """The database refused a batch of outcomes written together (not for a lost connection);
    the transaction they were written in is lost: record them again with record_one_by_one."""

    def __init__(self, error: Exception) -> None:
        super().__init__(_error_name(error))


async def record(
    session: AsyncSession, results: list[Result], settings: DeliverySettings, rng: random.Random
) -> list[MessageStatus | None]:
    """Records each result, together; the status each message is left in (None: its pacing
    slot was missed, so it went back to the queue untried). Whatever a server answered is made
    storable first (core/text.py). Raises RecordRefused if the database refuses any row."""
    writes = [_write_of(result, settings, rng) for result in results]
    try:
        await _apply(session, writes)
    except Exception as error:
        _reraise_if_connection_lost(error)
        raise RecordRefused(error) from None
    return [write.status for write in writes]


async def record_one_by_one(
    session: AsyncSession, results: list[Result], settings: DeliverySettings, rng: random.Random
) -> list[MessageStatus | None]:
    """As record, after RecordRefused, in a new transaction: each result under a SAVEPOINT of
    its own, so that one row the database refuses never undoes or blocks the others. A refused
    one is logged and left for its lease to run out (None)."""
    statuses: list[MessageStatus | None] = []
    for result in results:
        write = _write_of(result, settings, rng)
        try:
            async with session.begin_nested():
                await _apply(session, [write])
        except Exception as error:
            _reraise_if_connection_lost(error)
            job = write.result.job
            # Not log.exception: the traceback would show the statement's values.
            log.error(
                "delivery outcome not recorded; its lease will run out",
                extra={
                    "message_id": job.message.id,
                    "organization_id": job.organization_id,
                    "attempt_id": job.attempt_id,
                    "error": _error_name(error),
                },
            )
            statuses.append(None)
        else:
            statuses.append(write.status)
    return statuses


@dataclass(frozen=True)
class _Write:
    """The rows one result is recorded with."""

    result: Result
    status: MessageStatus | None
    attempt: dict[str, Any] | None = None
    answer: messages.DeliveryAnswer | None = None
    retry_at: datetime | None = None
    """With an `outbox` answer: when the message is due again."""
    release: dict[str, Any] | None = None
    """A missed slot: the attempt is deleted and the message goes back to the queue."""


def _write_of(result: Result, settings: DeliverySettings, rng: random.Random) -> _Write:
    job, outcome, now = result.job, result.outcome, result.finished_at
    if isinstance(outcome, SlotMissed):
        # Nothing went out: the attempt never was, and the message is due again at once.
        release = {"b_id": job.message.id, "b_token": job.lease_token, "b_due_at": now}
        return _Write(result, None, release=release)
    code = outcome.code
    body = storable(outcome.text, MAX_BODY)
    retry_at = None
    if isinstance(outcome, Receipt):
        attempt_outcome, status, summary = Outcome.SENT, MessageStatus.SENT, body
    else:
        attempt_outcome, status, summary = outcome_of(outcome), MessageStatus.FAILED, body
        decision = decide(outcome, job.attempt_number, settings, rng)
        if not isinstance(decision, GiveUp):
            status, retry_at = MessageStatus.OUTBOX, now + timedelta(seconds=decision.delay_seconds)
        elif decision.reason != "permanent failure":
            summary = storable(f"{body} ({decision.reason})", MAX_BODY)
    attempt = {
        "b_id": job.attempt_id,
        "b_outcome": attempt_outcome,
        "b_finished_at": now,
        "b_duration_ms": result.duration_ms,
        "b_code": code,
        "b_body": body,
        # Checked again here, whichever transport made the receipt: it is a server's text.
        "b_provider_message_id": provider_id(outcome.provider_message_id)
        if isinstance(outcome, Receipt)
        else None,
    }
    answer = messages.DeliveryAnswer(
        job.message.id, job.organization_id, status, code, summary, now
    )
    return _Write(result, status, attempt=attempt, answer=answer, retry_at=retry_at)


async def _apply(session: AsyncSession, writes: list[_Write]) -> None:
    await repository.close_attempts(session, [w.attempt for w in writes if w.attempt])
    attempts = {
        w.result.job.message.id: (w.result.job.attempt_id, w.attempt["b_outcome"])
        for w in writes
        if w.attempt
    }
    settled = [
        (w.answer, w.result.job.lease_token) for w in writes if w.answer and w.retry_at is None
    ]
    await _settle(session, settled, attempts)
    retried = []
    for w in writes:
        if w.answer and w.retry_at is not None:
            job = w.result.job
            if await repository.retry_later(session, job.message.id, job.lease_token, w.retry_at):
                retried.append(w.answer)
    await messages.record_delivery(session, retried)
    await _emit(session, retried, attempts)
    missed = [w for w in writes if w.release]
    await repository.delete_attempts(session, [w.result.job.attempt_id for w in missed])
    await repository.release(session, [w.release for w in missed if w.release])


def _reraise_if_connection_lost(error: Exception) -> None:
    """A lost connection refuses every row alike: the whole batch's leases will run out."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        raise error


def _error_name(error: Exception) -> str:
    """What kind of error, without the statement's values (a server's text, ids)."""
    cause = error.orig if isinstance(error, DBAPIError) else None
    code = getattr(cause, "sqlstate", None)
    name = type(cause or error).__name__
    return f"{name} ({code})" if code else name


async def queue_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    """Outbox depth, and how many seconds the most overdue message has waited (0 if none)."""
    depth, earliest = await repository.queue_stats(session, now)
    overdue = (now - earliest).total_seconds() if earliest is not None else 0.0
    return depth, max(0.0, overdue)


@dataclass(frozen=True)
class WorkerRecord:
    """What a worker writes of itself in the workers table."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime


# A worker's row not seen for this long belongs to one that died long ago: housekeeping drops it.
FORGET_WORKERS_AFTER = timedelta(days=1)


async def worker_seen(session: AsyncSession, worker: WorkerRecord, now: datetime) -> None:
    """The worker's heartbeat: its row, written if missing (first beat, or dropped meanwhile)."""
    await repository.save_heartbeat(
        session,
        {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "version": worker.version,
            "started_at": worker.started_at,
            "last_seen_at": now,
        },
    )


async def worker_stopped(session: AsyncSession, worker_id: str) -> None:
    await repository.delete_heartbeats(session, worker_id=worker_id)


async def forget_dead_workers(session: AsyncSession, now: datetime) -> None:
    await repository.delete_heartbeats(session, seen_before=now - FORGET_WORKERS_AFTER)


async def live_workers(session: AsyncSession, now: datetime, stale_seconds: float) -> int:
    """Workers (embedded or standalone) whose heartbeat is at most stale_seconds old."""
    return await repository.workers_seen_since(session, now - timedelta(seconds=stale_seconds))


async def waiting_seconds(session: AsyncSession, now: datetime) -> int | None:
    """How long (whole seconds) the message due longest has waited for a worker; None if none
    is due."""
    oldest = await repository.oldest_due(session, now)
    return None if oldest is None else max(0, int((now - oldest).total_seconds()))


async def list_attempts(
    session: AsyncSession, organization_id: str, message_id: str
) -> list[DeliveryAttempt]:
    await messages.get_message(session, organization_id, message_id)  # 404 unless theirs
    return await repository.attempts_of(session, message_id)


async def messages_by_provider_id(
    session: AsyncSession, provider_message_ids: Collection[str]
) -> dict[str, str]:
    """Message ids by the provider's id for what it accepted (any organization's: the caller
    checks whose message it is)."""
    return await repository.messages_by_provider_id(session, provider_message_ids)


async def raw_source(
    session: AsyncSession, organization_id: str, message_id: str, blobs: BlobStorage
) -> bytes:
    """The message as delivery builds it (RFC 5322, attachments included): its .eml. 409 when an
    attached file is gone."""
    message = messages.MessageToSend.of(
        await messages.get_message(session, organization_id, message_id)  # 404 unless theirs
    )
    file_ids = {f for a in message.attachments if (f := files.attached_file_id(a)) is not None}
    attachments = _attachments(message, await files.load_for_delivery(session, file_ids, blobs))
    if isinstance(attachments, str):
        raise Conflict(attachments.removesuffix("; nothing was sent"))
    # Reads the attachments' blobs: off the event loop.
    return await asyncio.to_thread(build_mime, _outgoing(message, attachments, None))
