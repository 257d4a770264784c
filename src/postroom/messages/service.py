"""Rules for email messages up to `outbox`: create, read, list, send a draft, delete; and the
kept counts of messages by status, which every change to a message's existence or status moves
in its own transaction."""

from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.core.metrics import MESSAGES_CREATED
from postroom.credentials import service as credentials
from postroom.db.driver import Statements, driver, session_of
from postroom.db.group_commit import GroupCommit
from postroom.delivery import queue
from postroom.errors import Conflict, NotFound, PostroomError
from postroom.files import service as files
from postroom.messages import repository
from postroom.messages.models import EmailMessage, MessageStatus
from postroom.messages.schedule import Keep, checked_time, due_at
from postroom.messages.schemas import EmailMessageCreate, EmailMessageRead
from postroom.senders import service as senders

ID_PREFIX = "mail_msg_"
# A message as the related object of an attachment (files/attachments.py).
MESSAGE_RELATED_TYPE = "email-message"


async def _resolve_attachments(
    session: AsyncSession, organization_id: str, attachments: list[dict[str, str]], max_bytes: int
) -> list[dict[str, str]]:
    """The attachments as they are stored: each `attachment` (a link) with the file it names
    now beside it, which is the file sent even if the link changes or goes later."""
    refs = [(a["resourceType"], a["resourceId"]) for a in attachments]
    file_ids = await files.check_attachments(session, organization_id, refs, max_bytes=max_bytes)
    resolved = []
    for attachment, file_id in zip(attachments, file_ids, strict=True):
        stored = {
            "resourceType": attachment["resourceType"],
            "resourceId": attachment["resourceId"],
        }
        if stored["resourceType"] == files.ATTACHMENT_RESOURCE_TYPE:
            stored[files.RESOLVED_FILE_KEY] = file_id
        resolved.append(stored)
    return resolved


def _file_ids(attachments: list[dict[str, str]]) -> set[str]:
    return {f for a in attachments if (f := files.attached_file_id(a)) is not None}


async def create_message(
    session: AsyncSession,
    organization_id: str,
    data: EmailMessageCreate,
    now: datetime,
    *,
    max_attachment_bytes: int,
    allowed_domains: tuple[str, ...],
    max_schedule: timedelta = timedelta(days=30),
    group: GroupCommit[EmailMessage, Any] | None = None,
) -> EmailMessage:
    """Stores a message; in `outbox` it is queued in the same transaction (the outbox pattern),
    due at its scheduled time. `allowed_domains`: the From domains the server-wide transport
    takes without a verified email delivery setting. With a `group`, a message whose checks
    read nothing from the database (the common case: the sender is known in this process) is
    written in the group's next shared transaction rather than the session's; either way it is
    committed when this returns, or (the session's) with the request."""
    message = await check_new_message(
        session,
        organization_id,
        data,
        now,
        max_attachment_bytes=max_attachment_bytes,
        allowed_domains=allowed_domains,
        max_schedule=max_schedule,
    )
    if group is not None and not session.in_transaction():
        # Nothing read in this transaction: the message does not depend on its snapshot, and on
        # SQLite it holds no lock that the group's writer would wait for.
        await group.submit(message)
    else:
        await store_new_messages(session, [message])
    return message


# What checking a message looked up, by what it looked up, for messages checked together (a
# batch): the organization's rules do not change within one transaction.
CheckMemo = dict[tuple[str, str], object]
T = TypeVar("T")


async def _remembered(
    memo: CheckMemo | None, key: tuple[str, str], look_up: Callable[[], Awaitable[T]]
) -> T:
    """`await look_up()`, or what it gave (or raised) the first time for `key`."""
    if memo is None:
        return await look_up()
    if key not in memo:
        try:
            memo[key] = await look_up()
        except PostroomError as error:
            memo[key] = error
    found = memo[key]
    if isinstance(found, PostroomError):
        raise found
    return cast(T, found)


async def check_new_message(
    session: AsyncSession,
    organization_id: str,
    data: EmailMessageCreate,
    now: datetime,
    *,
    max_attachment_bytes: int,
    allowed_domains: tuple[str, ...],
    max_schedule: timedelta = timedelta(days=30),
    memo: CheckMemo | None = None,
) -> EmailMessage:
    """The message `data` makes, checked (its credential or sender, its attachments) but not
    stored: `store_new_messages` writes it. Writes nothing, so a message that fails its checks
    leaves the transaction as it was."""
    now = now.replace(microsecond=0)
    scheduled_at = checked_time(data.scheduled_time, now, max_schedule)
    sender = None
    if data.credential_hash is not None:
        credential_hash = data.credential_hash
        await _remembered(
            memo,
            ("credential", credential_hash),
            lambda: credentials.check_usable(session, organization_id, credential_hash),
        )
    else:
        sender = await _remembered(
            memo,
            ("from", data.from_),
            lambda: senders.sender_for(
                session, organization_id, data.from_, allowed_domains=allowed_domains
            ),
        )
    attachments = await _resolve_attachments(
        session,
        organization_id,
        [a.model_dump(by_alias=True) for a in data.attachments or []],
        max_attachment_bytes,
    )
    cc, bcc = data.cc or [], data.bcc or []
    return EmailMessage.transient(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        status=data.status,
        from_address=data.from_,
        to_addresses=data.to,
        cc_addresses=cc,
        bcc_addresses=bcc,
        subject=data.subject,
        text=data.text,
        html=data.html,
        metadata_=data.metadata,
        attachments=attachments,
        credential_hash=data.credential_hash,
        sender_name=sender.name if sender else None,
        sender_credential_id=sender.credential_id if sender else None,
        initiated_at=now if data.status == "outbox" else None,
        scheduled_at=scheduled_at,
        reply_to=data.reply_to or None,
        headers=data.headers or None,
        unsubscribe_url=data.unsubscribe_url,
        hosted_unsubscribe=data.hosted_unsubscribe or None,
        created_at=now,
        updated_at=now,
        search_text=" ".join([data.subject, data.from_, *data.to, *cc, *bcc]).lower(),
    )


async def store_new_messages(session: Statements, messages: Sequence[EmailMessage]) -> None:
    """Writes messages made by `check_new_message` (of one organization or several): those in
    `outbox` queued, their files linked and the kept counts changed with them, in one statement
    on PostgreSQL (one round trip, atomic by itself: the group commit runs it outside a
    transaction), else one statement per table in the session's transaction. The answer is
    built from the objects as written."""
    if not messages:
        return
    queued = [_queue_entry(m) for m in messages if m.status == MessageStatus.OUTBOX]
    links = {m.id: _file_ids(m.attachments) for m in messages if m.attachments}
    counts = Counter((m.organization_id, str(m.status)) for m in messages)
    prepared = await driver(session)
    if prepared is not None:
        await prepared.execute_together(
            [
                repository.new_message_rows(messages, prepared.dialect),
                queue.entry_rows(queued, prepared.dialect),
                repository.file_link_rows(links),
                repository.count_changes(counts),
            ]
        )
    else:
        orm = session_of(session)
        await repository.insert_messages(orm, messages)
        await queue.enqueue_many(orm, queued)
        await repository.link_many_files(orm, links)
        await repository.change_counts(orm, counts)
    for (_, status), count in counts.items():
        MESSAGES_CREATED.labels(status).inc(count)


async def queue_notice(
    session: AsyncSession,
    organization_id: str,
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    now: datetime,
) -> EmailMessage:
    """A message of postroom's own (a verification mail) into outbox, through the server-wide
    transport, in the caller's transaction; none of a tenant's rules apply to it."""
    now = now.replace(microsecond=0)
    message = EmailMessage(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        status=MessageStatus.OUTBOX,
        from_address=sender,
        to_addresses=[to],
        cc_addresses=[],
        bcc_addresses=[],
        subject=subject,
        text=text,
        html=html,
        metadata_=None,
        attachments=[],
        initiated_at=now,
        created_at=now,
        updated_at=now,
        search_text=f"{subject} {sender} {to}".lower(),
    )
    await repository.insert_messages(session, [message])
    await _enqueue(session, message)
    await repository.change_counts(session, {(organization_id, MessageStatus.OUTBOX): 1})
    MESSAGES_CREATED.labels(MessageStatus.OUTBOX).inc()
    return message


async def get_message(session: AsyncSession, organization_id: str, message_id: str) -> EmailMessage:
    message = await repository.get(session, organization_id, message_id)
    if message is None:
        raise NotFound(f"email message {message_id} not found")
    return message


async def list_messages(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[EmailMessage], int]:
    return await repository.list_page(session, organization_id, query)


async def send_draft(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    now: datetime,
    *,
    max_attachment_bytes: int,
    allowed_domains: tuple[str, ...],
    scheduled: datetime | Keep | None = Keep.STORED,
    max_schedule: timedelta = timedelta(days=30),
) -> EmailMessage:
    """draft -> outbox, due at `scheduled` (None: at once), or at the time the draft keeps.
    Anything else is a conflict: a message is sent once. Its attachments are checked and
    resolved again (a file or a link may have changed since the draft was written), and a draft
    that names no credential takes the default email delivery setting of now, checked and
    pinned."""
    draft = await get_message(session, organization_id, message_id)
    sender = None
    attachments = None
    scheduled_at = None
    if draft.status == MessageStatus.DRAFT:
        requested = draft.scheduled_at if isinstance(scheduled, Keep) else scheduled
        scheduled_at = checked_time(
            requested, now.replace(microsecond=0), max_schedule, stored=isinstance(scheduled, Keep)
        )
        attachments = await _resolve_attachments(
            session, organization_id, draft.attachments, max_attachment_bytes
        )
        if draft.credential_hash is None:
            sender = await senders.sender_for(
                session, organization_id, draft.from_address, allowed_domains=allowed_domains
            )
    message = await repository.move_draft_to_outbox(
        session, organization_id, message_id, now.replace(microsecond=0), scheduled_at
    )
    if message is None:
        current = await get_message(session, organization_id, message_id)
        raise Conflict(f"only a draft can be sent; this message is {current.status}")
    if message.credential_hash is None:
        message.sender_name = sender.name if sender else None
        message.sender_credential_id = sender.credential_id if sender else None
    if attachments is not None and attachments != message.attachments:
        message.attachments = attachments
        await repository.replace_file_links(session, message.id, _file_ids(attachments))
    await session.flush()
    await _enqueue(session, message)
    await repository.change_counts(
        session,
        {(organization_id, MessageStatus.DRAFT): -1, (organization_id, MessageStatus.OUTBOX): 1},
    )
    return message


def _queue_entry(message: EmailMessage) -> queue.Entry:
    return queue.Entry(
        message.id,
        message.organization_id,
        credential_id=message.credential_hash or message.sender_credential_id,
        due_at=due_at(message, message.initiated_at or message.created_at),
    )


async def _enqueue(session: AsyncSession, message: EmailMessage) -> None:
    """Storing a message in `outbox` is also queuing it, in the same transaction."""
    await queue.enqueue_many(session, [_queue_entry(message)])


async def attaches_queued_file(session: AsyncSession, organization_id: str, file_id: str) -> bool:
    """Whether a message in `outbox` attaches this file (which must then stay)."""
    return await repository.queued_with_file(session, organization_id, file_id)


async def delete_message(session: AsyncSession, organization_id: str, message_id: str) -> None:
    status = await repository.delete_unless_in_flight(session, organization_id, message_id)
    if status is None:
        await get_message(session, organization_id, message_id)
        raise Conflict("a message in outbox is being delivered and cannot be deleted")
    await files.unlink_related(session, organization_id, MESSAGE_RELATED_TYPE, message_id)
    await repository.change_counts(session, {(organization_id, status): -1})


@dataclass(frozen=True, slots=True)
class MessageToSend:
    """A message as delivery reads it to send it: the columns it sends and checks, under the
    model's attribute names, as plain values (no ORM instance: loading a claim's messages as
    ORM objects cost ~1.5 ms of CPU a claim of 40, a third of the claim)."""

    id: str
    organization_id: str
    status: str
    from_address: str
    to_addresses: list[str]
    cc_addresses: list[str]
    bcc_addresses: list[str]
    subject: str
    text: str
    html: str
    metadata_: dict[str, str] | None
    attachments: list[dict[str, str]]
    credential_hash: str | None
    sender_name: str | None
    sender_credential_id: str | None
    initiated_at: datetime | None
    scheduled_at: datetime | None
    reply_to: list[str] | None
    headers: dict[str, str] | None
    unsubscribe_url: str | None
    hosted_unsubscribe: bool | None
    created_at: datetime

    @classmethod
    def of(cls, message: EmailMessage) -> "MessageToSend":
        return cls(*(getattr(message, name) for name in cls.__slots__))


async def messages_to_send(
    session: AsyncSession, message_ids: Collection[str]
) -> dict[str, MessageToSend]:
    """The messages of these ids (any organization's: the caller holds their queue leases)."""
    rows = await repository.rows_to_send(session, message_ids, MessageToSend.__slots__)
    return {row[0]: MessageToSend(*row) for row in rows}


async def messages_for_delivery(
    session: AsyncSession, message_ids: Collection[str]
) -> dict[str, EmailMessage]:
    """The messages of these ids (any organization's: the caller holds their queue leases)."""
    return {m.id: m for m in await repository.get_many(session, message_ids)}


async def messages_for_events(
    session: AsyncSession, message_ids: Collection[str]
) -> dict[str, EmailMessage]:
    """The messages of these ids as the database holds them now (read again, not taken from
    the session: delivery has just changed them with UPDATE statements)."""
    return {m.id: m for m in await repository.get_many(session, message_ids, fresh=True)}


def wire_resource(message: EmailMessage) -> dict[str, Any]:
    """The message as GET /email-messages/{id} answers it, as JSON, for a webhook payload. Its
    self link is relative to the server's root: no request gives the base URL here."""
    read = EmailMessageRead.of(message, f"/email-messages/{message.id}")
    return read.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class DeliveryAnswer:
    """What delivery learnt of a message in `outbox`: its outcome (`sent` or `failed`), or
    `outbox` with the answer of an attempt that will be retried."""

    message_id: str
    organization_id: str
    status: MessageStatus
    code: int | None
    body: str
    at: datetime


async def record_delivery(session: AsyncSession, answers: Sequence[DeliveryAnswer]) -> None:
    """Writes each answer on its message, and moves the kept counts of those that left
    `outbox`. The caller holds each message's queue lease, so each is still in `outbox`."""
    await repository.record_answers(
        session,
        [
            {
                "b_id": a.message_id,
                "b_status": a.status,
                "b_code": a.code,
                "b_body": a.body,
                "b_sent_at": a.at.replace(microsecond=0)
                if a.status == MessageStatus.SENT
                else None,
                "b_updated_at": a.at.replace(microsecond=0),
            }
            for a in answers
        ],
    )
    deltas: Counter[tuple[str, str]] = Counter()
    for answer in answers:
        if answer.status != MessageStatus.OUTBOX:
            deltas[(answer.organization_id, MessageStatus.OUTBOX)] -= 1
            deltas[(answer.organization_id, answer.status)] += 1
    # Last: the count rows stay locked until commit (PostgreSQL).
    await repository.change_counts(session, deltas)


async def change_counts(session: AsyncSession, deltas: Mapping[tuple[str, str], int]) -> None:
    """Moves the kept counts by (organization_id, status) -> delta (zeros are dropped), in the
    caller's transaction: for a change made outside this module (delivery: a message leaving
    outbox), which must call this in the transaction of that change, for exactly the rows that
    changed."""
    await repository.change_counts(session, deltas)


async def recount(session: AsyncSession, organization_id: str | None = None) -> None:
    """Rebuilds the kept counts of one organization (or of all) from its messages: a repair
    after messages were written by other means (a bulk load, a manual fix)."""
    await repository.recount(session, organization_id)
