"""Recipients left out at send time because they are on their organization's blocklist: asked
once per organization per claim, not per message."""

import dataclasses
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.blocklists import service as blocklists
from postroom.delivery.mime import OutgoingMessage
from postroom.messages.service import MessageToSend


def recipients(message: MessageToSend) -> list[str]:
    return [*message.to_addresses, *message.cc_addresses, *message.bcc_addresses]


async def blocked_recipients(
    session: AsyncSession, claimed: Sequence[MessageToSend], now: datetime
) -> dict[str, list[str]]:
    """The recipients of each message the blocklist leaves out now, by message id (only
    messages with some)."""
    wanted: dict[str, set[str]] = {}
    for message in claimed:
        wanted.setdefault(message.organization_id, set()).update(recipients(message))
    blocked = {
        organization_id: await blocklists.blocked(session, organization_id, addresses, now)
        for organization_id, addresses in wanted.items()
    }
    found: dict[str, list[str]] = {}
    for message in claimed:
        theirs = blocked[message.organization_id]
        if theirs and (left_out := [a for a in recipients(message) if a in theirs]):
            found[message.id] = list(dict.fromkeys(left_out))
    return found


def without(message: OutgoingMessage, left_out: Collection[str]) -> OutgoingMessage:
    if not left_out:
        return message
    return dataclasses.replace(
        message,
        to=tuple(a for a in message.to if a not in left_out),
        cc=tuple(a for a in message.cc if a not in left_out),
        bcc=tuple(a for a in message.bcc if a not in left_out),
    )


def nothing_left(message: MessageToSend, left_out: Collection[str]) -> bool:
    return all(a in left_out for a in recipients(message))
