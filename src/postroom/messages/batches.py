"""Creating many messages in one request (POST /email-message-batches): each checked as a
single POST checks it, the valid ones stored together in the request's transaction."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.errors import PostroomError
from postroom.messages import service
from postroom.messages.models import EmailMessage
from postroom.messages.schemas import EmailMessageCreate


async def create_messages(
    session: AsyncSession,
    organization_id: str,
    items: Sequence[EmailMessageCreate | PostroomError],
    now: datetime,
    *,
    max_attachment_bytes: int,
    allowed_domains: tuple[str, ...],
    max_schedule: timedelta,
) -> list[EmailMessage | PostroomError]:
    """For each item in order: the message stored, or why it was not (its own error, or what
    its checks raised). An item given as an error (it did not parse) is answered with it. The
    organization's credentials and senders are looked up once per credential or address."""
    memo: service.CheckMemo = {}
    outcomes: list[EmailMessage | PostroomError] = []
    for item in items:
        if isinstance(item, PostroomError):
            outcomes.append(item)
            continue
        try:
            message = await service.check_new_message(
                session,
                organization_id,
                item,
                now,
                max_attachment_bytes=max_attachment_bytes,
                allowed_domains=allowed_domains,
                max_schedule=max_schedule,
                memo=memo,
            )
        except PostroomError as error:
            outcomes.append(error)
            continue
        outcomes.append(message)
    stored = [o for o in outcomes if isinstance(o, EmailMessage)]
    await service.store_new_messages(session, stored)
    return outcomes
