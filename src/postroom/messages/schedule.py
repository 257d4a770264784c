"""Scheduled send and cancel, postroom's additions to Rebilly's contract: when a message in
`outbox` is due, moving that time while it waits, and taking it back to `draft` while no worker
holds it. The queue row changes only while its lease is free (delivery/queue.py says why a
worker's claim cannot slip in between)."""

from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.delivery import queue
from postroom.errors import NotFound, invalid_field
from postroom.messages import repository
from postroom.messages.errors import MessageBeingSent, MessageIsDraft, MessageSettled
from postroom.messages.models import EmailMessage, MessageStatus

FIELD = "scheduledTime"
# A time this little past is "now": the client's clock, or the request's trip, is a bit behind.
PAST_TOLERANCE = timedelta(seconds=60)


class Keep(Enum):
    """No scheduledTime in the request: a draft being sent keeps the one it has."""

    STORED = "stored"


def checked_time(
    requested: datetime | None, now: datetime, max_ahead: timedelta, *, stored: bool = False
) -> datetime | None:
    """The scheduled time to keep (None: at once), or a 422 naming scheduledTime. Kept to the
    second, rounded up, so that a message is never sent before the time it shows."""
    if requested is None:
        return None
    if requested < now - PAST_TOLERANCE:
        whose = "the draft's scheduledTime" if stored else "the time"
        raise invalid_field(
            FIELD,
            f"{whose} {requested:%Y-%m-%dT%H:%M:%SZ} has passed; give a time to come, or null "
            "to send at once",
        )
    if requested > now + max_ahead:
        days = max_ahead.total_seconds() / 86400
        latest = (now + max_ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise invalid_field(FIELD, f"at most {days:g} days ahead (until {latest})")
    if requested.microsecond:
        requested = requested.replace(microsecond=0) + timedelta(seconds=1)
    return requested


def due_at(message: EmailMessage, now: datetime) -> datetime:
    """When the message's first attempt may start."""
    if message.scheduled_at is not None and message.scheduled_at > now:
        return message.scheduled_at
    return now


async def _current(session: AsyncSession, organization_id: str, message_id: str) -> EmailMessage:
    message = await repository.get(session, organization_id, message_id, fresh=True)
    if message is None:
        raise NotFound(f"email message {message_id} not found")
    return message


def _not_waiting(status: str, doing: str) -> Exception:
    """Why a message that is not waiting in `outbox` cannot be cancelled or rescheduled."""
    if status == MessageStatus.DRAFT:
        return MessageIsDraft(
            f"this message is a draft; only a message waiting in outbox can be {doing}"
        )
    if status in (MessageStatus.SENT, MessageStatus.FAILED):
        return MessageSettled(f"this message is {status}; it can no longer be {doing}")
    return MessageBeingSent(f"a worker is sending this message; it can no longer be {doing}")


async def cancel_message(
    session: AsyncSession, organization_id: str, message_id: str, now: datetime
) -> EmailMessage:
    """outbox -> draft while no worker holds the message; its attempts are kept."""
    now = now.replace(microsecond=0)
    message = await _current(session, organization_id, message_id)  # 404 unless theirs
    if message.status != MessageStatus.OUTBOX:
        raise _not_waiting(message.status, "cancelled")
    if not await queue.withdraw(session, message_id, now):
        # Claimed, or settled since it was read: say which, as it is now.
        raise _not_waiting(
            (await _current(session, organization_id, message_id)).status, "cancelled"
        )
    draft = await repository.move_outbox_to_draft(session, organization_id, message_id, now)
    if draft is None:
        raise _not_waiting(
            (await _current(session, organization_id, message_id)).status, "cancelled"
        )
    await repository.change_counts(
        session,
        {(organization_id, MessageStatus.OUTBOX): -1, (organization_id, MessageStatus.DRAFT): 1},
    )
    return draft


async def reschedule_message(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    requested: datetime | None,
    now: datetime,
    *,
    max_ahead: timedelta,
) -> EmailMessage:
    """A new scheduled time (None: at once) for a message waiting in `outbox` that no worker
    holds, or for a draft (the time it will be sent at)."""
    now = now.replace(microsecond=0)
    message = await _current(session, organization_id, message_id)
    if message.status not in (MessageStatus.DRAFT, MessageStatus.OUTBOX):
        raise _not_waiting(message.status, "rescheduled")
    scheduled_at = checked_time(requested, now, max_ahead)
    status = MessageStatus(message.status)
    if status == MessageStatus.OUTBOX:
        due = scheduled_at if scheduled_at is not None and scheduled_at > now else now
        if not await queue.reschedule(session, message_id, due, now):
            current = await _current(session, organization_id, message_id)
            raise _not_waiting(current.status, "rescheduled")
    changed = await repository.set_scheduled(
        session, organization_id, message_id, status, scheduled_at, now
    )
    if changed is None:
        current = await _current(session, organization_id, message_id)
        raise _not_waiting(current.status, "rescheduled")
    return changed
