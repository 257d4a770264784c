"""Organizations and API keys: creating them, and finding the organization a key reaches."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth import repository
from postroom.auth.models import ApiKey, Organization
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.errors import Conflict, NotFound, Unauthorized

KEY_PREFIX = "pr_"
# postroom's own organization (made by a migration): it holds the verification mail, which no
# API key reaches, since that mail carries a token its tenant must not read.
SYSTEM_ORGANIZATION_ID = "org_postroom"


@dataclass(frozen=True)
class NewOrganization:
    organization_id: str
    api_key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_organization(
    session: AsyncSession, name: str, now: datetime, *, api_key: str | None = None
) -> NewOrganization:
    """A new organization and its first API key (generated unless given)."""
    organization = Organization(id=new_id("org_"), name=name, created_at=now)
    session.add(organization)
    await session.flush()
    key = await create_api_key(session, organization.id, now, api_key=api_key)
    return NewOrganization(organization.id, key)


async def create_api_key(
    session: AsyncSession,
    organization_id: str,
    now: datetime,
    *,
    name: str = "default",
    api_key: str | None = None,
) -> str:
    """Stores a key's hash and returns the key itself: the only time it is ever seen."""
    _, key = await issue_api_key(session, organization_id, now, name=name, api_key=api_key)
    return key


async def issue_api_key(
    session: AsyncSession,
    organization_id: str,
    now: datetime,
    *,
    name: str = "default",
    api_key: str | None = None,
) -> tuple[ApiKey, str]:
    """The stored key (its hash) and the key itself, seen only now."""
    if organization_id == SYSTEM_ORGANIZATION_ID or not await repository.organization_exists(
        session, organization_id
    ):
        raise NotFound(f"organization {organization_id} does not exist")
    key = api_key or generate_key()
    stored = ApiKey(
        id=new_id("key_"),
        organization_id=organization_id,
        key_hash=hash_key(key),
        name=name,
        created_at=now,
        updated_at=now,
    )
    session.add(stored)
    await session.flush()
    return stored, key


async def get_api_key(session: AsyncSession, organization_id: str, key_id: str) -> ApiKey:
    """A live key of the organization; a revoked one is gone."""
    key = await repository.get_live_key(session, organization_id, key_id)
    if key is None:
        raise NotFound(f"api key {key_id} not found")
    return key


async def list_api_keys(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[ApiKey], int]:
    return await repository.list_live_keys(session, organization_id, query)


async def describe_api_key(
    session: AsyncSession, organization_id: str, key_id: str, description: str, now: datetime
) -> ApiKey:
    key = await get_api_key(session, organization_id, key_id)
    key.name = description
    key.updated_at = now
    await session.flush()
    return key


async def revoke_api_key(
    session: AsyncSession,
    organization_id: str,
    key_id: str,
    now: datetime,
    cache: "CallerCache | None" = None,
) -> None:
    """The key stops working: at once in this process, within the cache's time in others. The
    organization's last key is kept (409): without it nobody could reach the organization."""
    key = await get_api_key(session, organization_id, key_id)
    if await repository.live_key_count(session, organization_id) <= 1:
        raise Conflict("this is the organization's last API key; create another before revoking it")
    await repository.revoke_key(session, key, now)
    if cache is not None:
        cache.forget(key.id)


async def list_organizations_for_operator(session: AsyncSession) -> list[Organization]:
    """Every organization but postroom's own (the CLI's view)."""
    return await repository.list_organizations(session, leaving_out=SYSTEM_ORGANIZATION_ID)


async def list_keys_for_operator(session: AsyncSession, organization_id: str) -> list[ApiKey]:
    if not await repository.organization_exists(session, organization_id):
        raise NotFound(f"organization {organization_id} does not exist")
    return await repository.all_live_keys(session, organization_id)


async def get_organization(
    session: AsyncSession, caller_organization_id: str, organization_id: str
) -> Organization:
    """The caller's own organization; any other id is not found."""
    found = None
    if organization_id == caller_organization_id:
        found = await repository.get_organization(session, organization_id)
    if found is None:
        raise NotFound(f"organization {organization_id} not found")
    return found


async def bootstrap(
    session: AsyncSession, now: datetime, api_key: str | None
) -> NewOrganization | None:
    """On an empty database, the first organization, so a new user can call the API at once."""
    if await repository.organization_count(session, leaving_out=SYSTEM_ORGANIZATION_ID) > 0:
        return None
    return await create_organization(session, "default", now, api_key=api_key)


@dataclass(frozen=True)
class Caller:
    api_key_id: str
    organization_id: str


class CallerCache:
    """Who each recently seen API key is, kept in this process for `ttl`, so that a request
    does not ask the database every time: a key revoked meanwhile keeps working here for at
    most that long. Only valid keys are kept (a new key works at once); at most `size` of them,
    the oldest dropped first."""

    def __init__(self, ttl: timedelta, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._found: dict[str, tuple[Caller, datetime]] = {}

    def get(self, key_hash: str, now: datetime) -> Caller | None:
        kept = self._found.get(key_hash)
        if kept is None:
            return None
        caller, until = kept
        if now >= until:
            del self._found[key_hash]
            return None
        return caller

    def forget(self, api_key_id: str) -> None:
        """Drops what is kept for the key (revoked in this process)."""
        for key_hash, (caller, _) in list(self._found.items()):
            if caller.api_key_id == api_key_id:
                del self._found[key_hash]

    def put(self, key_hash: str, caller: Caller, now: datetime) -> None:
        if self.ttl <= timedelta(0):
            return
        self._found.pop(key_hash, None)
        if len(self._found) >= self.size:
            del self._found[next(iter(self._found))]  # dicts keep insertion order
        self._found[key_hash] = (caller, now + self.ttl)


async def authenticate(
    session: AsyncSession, key: str | None, *, cache: CallerCache, now: datetime
) -> Caller:
    """Who `key` is: which key, reaching which organization."""
    if not key:
        raise Unauthorized("an API key is required: send it as REB-APIKEY or Authorization: Bearer")
    key_hash = hash_key(key)
    caller = cache.get(key_hash, now)
    if caller is not None:
        return caller
    found = await repository.find_key(session, key_hash)
    if found is None:
        raise Unauthorized("the API key is not valid")
    caller = Caller(*found)
    cache.put(key_hash, caller, now)
    return caller
