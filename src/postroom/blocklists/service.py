"""Rules of the blocklist: who is left out at send time, and entries added by bounces and
complaints (automated) or through the API (manual)."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.blocklists import repository
from postroom.blocklists.models import BlocklistEntry, BlocklistSource, BlocklistType
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.errors import Conflict, NotFound

BLOCKLIST_PREFIX = "blkl_"


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    """The (lower-cased) domain in IDNA A-labels, as email-validator writes it, so that an entry
    and an address match whichever form each was written in; one it cannot convert is kept."""
    if domain.isascii():
        return domain
    try:
        checked = validate_email(
            "postmaster@" + domain, check_deliverability=False, test_environment=True
        )
    except EmailNotValidError:
        return domain
    return checked.ascii_domain


def _canonical(address: str) -> str:
    """How the blocklist holds an address: lower-cased, its domain in A-labels."""
    local, at, domain = address.lower().rpartition("@")
    return f"{local}{at}{_ascii_domain(domain)}"


async def blocked(
    session: AsyncSession, organization_id: str, addresses: Iterable[str], now: datetime
) -> set[str]:
    """Which of these addresses (as given) the organization's blocklist leaves out now: the
    address itself or its domain is listed, and the entry has not expired."""
    held = {a: _canonical(a) for a in addresses}
    wanted = set(held.values())
    entries = await repository.blocking(
        session, organization_id, wanted, {_domain(a) for a in wanted}, now
    )
    if not entries:
        return set()
    emails = {v for t, v in entries if t == BlocklistType.EMAIL}
    domains = {v for t, v in entries if t == BlocklistType.EMAIL_DOMAIN}
    return {a for a, c in held.items() if c in emails or _domain(c) in domains}


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
    value = _canonical(address)
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


# --- the API: /blocklists (manual entries) ---------------------------------------------------


@dataclass(frozen=True)
class EntryFields:
    """What a client gives of an entry (the rest is postroom's)."""

    type: BlocklistType
    value: str
    expiration_time: datetime | None

    def canonical(self) -> "EntryFields":
        value = (
            _canonical(self.value)
            if self.type == BlocklistType.EMAIL
            else _ascii_domain(self.value.lower())
        )
        return replace(self, value=value)


async def _check_unlisted(
    session: AsyncSession, organization_id: str, fields: EntryFields, except_id: str | None = None
) -> None:
    found = await repository.entry_listing(session, organization_id, fields.type, fields.value)
    if found is not None and found != except_id:
        raise Conflict(f"{fields.value} is on the blocklist already, as {found}")


async def _flush(session: AsyncSession, fields: EntryFields) -> None:
    # A concurrent request may list the same (type, value) between the check and the write:
    # the unique index refuses it, and the savepoint keeps the request's transaction usable.
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"{fields.value} is on the blocklist already") from None


async def create_entry(
    session: AsyncSession,
    organization_id: str,
    fields: EntryFields,
    now: datetime,
    *,
    entry_id: str | None = None,
) -> BlocklistEntry:
    """A manual entry (of `entry_id`, for PUT's upsert)."""
    now = now.replace(microsecond=0)
    fields = fields.canonical()
    await _check_unlisted(session, organization_id, fields)
    if entry_id is not None and await repository.entry_id_taken(session, entry_id):
        raise Conflict(f"the id {entry_id} is taken")
    entry = BlocklistEntry(
        id=entry_id or new_id(BLOCKLIST_PREFIX),
        organization_id=organization_id,
        type=fields.type,
        value=fields.value,
        expiration_time=fields.expiration_time,
        source=BlocklistSource.MANUAL,
        entity_id=None,
        created_time=now,
        updated_time=now,
    )
    session.add(entry)
    await _flush(session, fields)
    return entry


async def get_entry(session: AsyncSession, organization_id: str, entry_id: str) -> BlocklistEntry:
    entry = await repository.get_entry(session, organization_id, entry_id)
    if entry is None:
        raise NotFound(f"blocklist {entry_id} not found")
    return entry


async def list_entries(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[BlocklistEntry], int]:
    return await repository.list_entries(session, organization_id, query)


async def put_entry(
    session: AsyncSession, organization_id: str, entry_id: str, fields: EntryFields, now: datetime
) -> tuple[BlocklistEntry, bool]:
    """Rebilly's upsert: replaces the organization's entry of that id, or creates it; True if
    created. An entry given another type or value becomes a manual one."""
    entry = await repository.get_entry(session, organization_id, entry_id)
    if entry is None:
        return await create_entry(session, organization_id, fields, now, entry_id=entry_id), True
    fields = fields.canonical()
    await _check_unlisted(session, organization_id, fields, except_id=entry_id)
    if (entry.type, entry.value) != (fields.type, fields.value):
        entry.type, entry.value = fields.type, fields.value
        entry.source, entry.entity_id = BlocklistSource.MANUAL, None
    entry.expiration_time = fields.expiration_time
    entry.updated_time = now.replace(microsecond=0)
    await _flush(session, fields)
    return entry, False


async def delete_entry(session: AsyncSession, organization_id: str, entry_id: str) -> None:
    entry = await get_entry(session, organization_id, entry_id)
    await session.delete(entry)
    await session.flush()
