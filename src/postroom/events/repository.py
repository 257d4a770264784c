"""SQL over email_message_events and inbound_replays."""

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.events.models import EventKind, InboundReplay, MessageEvent

_events = cast(Table, MessageEvent.__table__)
_replays = cast(Table, InboundReplay.__table__)


def _insert(session: AsyncSession, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def add_event(session: AsyncSession, row: dict[str, Any]) -> MessageEvent | None:
    """Inserts the event unless one with its dedupe_key is there already; the row, if added."""
    added = await session.execute(
        _insert(session, _events)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["organization_id", "dedupe_key"])
        .returning(_events.c.id)
    )
    if added.first() is None:
        return None
    return MessageEvent(**row)  # as written: no second round trip to read it back


async def soft_bounces(session: AsyncSession, organization_id: str, recipient: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(_events)
        .where(
            _events.c.organization_id == organization_id,
            _events.c.recipient == recipient,
            _events.c.type == EventKind.BOUNCED,
            _events.c.bounce_type == "soft",
        )
    )
    return int(count or 0)


async def events_of(session: AsyncSession, message_id: str) -> list[MessageEvent]:
    found = await session.scalars(
        select(MessageEvent)
        .where(MessageEvent.message_id == message_id)
        .order_by(MessageEvent.occurred_time, MessageEvent.id)
    )
    return list(found.all())


async def add_replay_token(
    session: AsyncSession, credential_id: str, token: str, now: datetime
) -> bool:
    """Records a signed request's token; False if the credential has seen it already."""
    added = await session.execute(
        _insert(session, _replays)
        .values(credential_id=credential_id, token=token, seen_at=now)
        .on_conflict_do_nothing(index_elements=["credential_id", "token"])
        .returning(_replays.c.token)
    )
    return added.first() is not None


async def forget_replay_tokens(session: AsyncSession, seen_before: datetime) -> None:
    await session.execute(delete(_replays).where(_replays.c.seen_at < seen_before))
