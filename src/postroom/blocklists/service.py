"""Rules of the blocklist: who is left out at send time, and entries added by bounces and
complaints (automated) or through the API (manual)."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.blocklists import repository
from postroom.blocklists.models import BlocklistSource, BlocklistType
from postroom.core.ids import new_id

BLOCKLIST_PREFIX = "blkl_"


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


async def blocked(
    session: AsyncSession, organization_id: str, addresses: Iterable[str], now: datetime
) -> set[str]:
    """Which of these addresses (as given) the organization's blocklist leaves out now: the
    address itself or its domain is listed, and the entry has not expired."""
    given = list(addresses)
    lowered = {a.lower() for a in given}
    entries = await repository.blocking(
        session, organization_id, lowered, {_domain(a) for a in lowered}, now
    )
    emails = {v for t, v in entries if t == BlocklistType.EMAIL}
    domains = {v for t, v in entries if t == BlocklistType.EMAIL_DOMAIN}
    return {a for a in given if a.lower() in emails or _domain(a.lower()) in domains}


async def add_automated(
    session: AsyncSession,
    organization_id: str,
    address: str,
    *,
    entity_id: str,
    now: datetime,
    expiration_time: datetime | None,
) -> None:
    """Puts an address on the blocklist because of what happened to message `entity_id` (a
    hard bounce, a complaint). An entry already in force is left as it is."""
    value = address.lower()
    added = await repository.add_if_absent(
        session,
        {
            "id": new_id(BLOCKLIST_PREFIX),
            "organization_id": organization_id,
            "type": BlocklistType.EMAIL,
            "value": value,
            "expiration_time": expiration_time,
            "source": BlocklistSource.AUTOMATED,
            "entity_id": entity_id,
            "created_time": now,
            "updated_time": now,
        },
    )
    if not added:
        await repository.renew_expired(
            session,
            organization_id,
            BlocklistType.EMAIL,
            value,
            now=now,
            expiration_time=expiration_time,
            entity_id=entity_id,
        )
