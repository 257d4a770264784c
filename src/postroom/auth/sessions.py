"""Dashboard sessions: an API key signed in, kept server-side, named by a cookie's token."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth import repository
from postroom.auth.models import DashboardSession
from postroom.auth.service import CallerCache, authenticate, hash_key


@dataclass(frozen=True)
class SignedIn:
    """A live session: the organization it shows, and the token its forms must carry."""

    organization_id: str
    api_key_id: str
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    token: str
    """The cookie's value: shown to the browser once, stored only as its hash."""
    signed_in: SignedIn
    expires_at: datetime


async def sign_in(
    session: AsyncSession,
    api_key: str,
    *,
    cache: CallerCache,
    now: datetime,
    lifetime: timedelta,
) -> NewSession:
    """A new session for the key's organization (401 for a key that is not valid)."""
    caller = await authenticate(session, api_key.strip(), cache=cache, now=now)
    # Each sign-in also clears the sessions that ran out, so the table does not grow forever.
    await repository.delete_sessions(session, expired_by=now)
    token = secrets.token_urlsafe(32)
    row = DashboardSession(
        token_hash=hash_key(token),
        api_key_id=caller.api_key_id,
        organization_id=caller.organization_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    await repository.add_session(session, row)
    return NewSession(token, _signed_in(row), row.expires_at)


async def find_session(session: AsyncSession, token: str, now: datetime) -> SignedIn | None:
    row = await repository.find_session(session, hash_key(token), now)
    return None if row is None else _signed_in(row)


async def sign_out(session: AsyncSession, token: str) -> None:
    await repository.delete_sessions(session, token_hash=hash_key(token))


def _signed_in(row: DashboardSession) -> SignedIn:
    return SignedIn(row.organization_id, row.api_key_id, row.csrf_token)
