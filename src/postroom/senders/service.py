"""Rules for email delivery settings: sender addresses with a name and a credential, at most one
default per organization, and the sender a message with no credential goes out as."""

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.credentials import service as credentials
from postroom.errors import Conflict, NotFound, invalid_field
from postroom.senders import repository
from postroom.senders.models import EmailDeliverySetting, SenderStatus
from postroom.senders.schemas import EmailDeliverySettingCreate, EmailDeliverySettingPatch

ID_PREFIX = "mail_dst_"
SERVER_DEFAULT_PROVIDER = "rebilly"  # the contract's name for the service's own delivery

# Each organization's default setting as recently read (None: it has none), and until when
# (time.monotonic()) that is believed without asking the database again: sender_for runs for
# every new message. A change made through this module forgets its organization at once; an
# API process that did not make it notices within _DEFAULT_SECONDS. A default not yet verified
# is never kept, so a message sent right after its verification is not refused.
_DEFAULT_SECONDS = 2.0
_DEFAULTS_KEPT = 10_000
_defaults: dict[str, tuple[repository.DefaultSetting | None, float]] = {}


def _forget_default(organization_id: str) -> None:
    _defaults.pop(organization_id, None)


async def _default_of(
    session: AsyncSession, organization_id: str
) -> repository.DefaultSetting | None:
    now = time.monotonic()
    kept = _defaults.get(organization_id)
    if kept is not None and kept[1] > now:
        return kept[0]
    default = await repository.get_default(session, organization_id)
    if default is None or default.status == SenderStatus.VERIFIED:
        if len(_defaults) >= _DEFAULTS_KEPT:
            _defaults.clear()
        _defaults[organization_id] = (default, now + _DEFAULT_SECONDS)
    return default


@dataclass(frozen=True)
class Sender:
    """What a message takes from its organization's default setting when it enters outbox."""

    name: str
    credential_id: str | None


def domain_allowed(address: str, allowed_domains: tuple[str, ...]) -> bool:
    """Whether the address's domain is one of `allowed_domains` or below one (`*`: any)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return any(
        allowed == "*" or domain == allowed or domain.endswith("." + allowed)
        for allowed in allowed_domains
    )


async def sender_for(
    session: AsyncSession,
    organization_id: str,
    from_address: str,
    *,
    allowed_domains: tuple[str, ...],
) -> Sender | None:
    """For a message that names no credential: the organization's default setting, whose address
    the message's `from` must be (a 422 naming `from` otherwise); None without a default, when
    the server-wide transport sends it, which the operator lends only to a From of a verified
    setting of the organization or of a domain in `allowed_domains`."""
    default = await _default_of(session, organization_id)
    if default is None:
        if domain_allowed(from_address, allowed_domains):
            return None
        own = await repository.find_by_address(session, organization_id, from_address)
        if own is not None and own.status == SenderStatus.VERIFIED:
            return None
        raise invalid_field(
            "from",
            f"the server-wide transport sends only from a verified email delivery setting (or "
            f"a domain its operator allows); verify a setting for {from_address}, or name a "
            "credentialHash",
        )
    if from_address.lower() != default.from_address.lower():
        raise invalid_field(
            "from",
            f"must be {default.from_address}, the address of the default email delivery "
            f"setting {default.id} (or name a credentialHash)",
        )
    if default.status != SenderStatus.VERIFIED:
        raise invalid_field(
            "from",
            f"{default.from_address} (email delivery setting {default.id}) is not verified yet",
        )
    return Sender(default.name, default.credential_id)


async def _check_unique_address(
    session: AsyncSession, organization_id: str, address: str, setting_id: str | None
) -> None:
    taken = await repository.find_by_address(session, organization_id, address)
    if taken is not None and taken.id != setting_id:
        raise invalid_field("from", f"{address} is already the address of setting {taken.id}")


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # The unique indexes are the last word when two requests race past the checks above.
        raise Conflict(
            "another request changed this organization's settings at the same time; try again"
        ) from None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_token(setting: EmailDeliverySetting, now: datetime, ttl: timedelta) -> str:
    """A new verification token for the setting, replacing any earlier one; only its hash is
    kept, so a copy of the database verifies nothing."""
    token = secrets.token_urlsafe(32)
    setting.verification_token_hash = _hash(token)
    setting.verification_expires_at = now + ttl
    return token


def _check_status_unchanged(given: str | None, current: str) -> None:
    # Read-only as in Rebilly's schema: a client may send back what it read, not change it.
    if given is not None and given != current:
        raise invalid_field(
            "status",
            "is read-only: a setting becomes verified when the link mailed to its address is "
            "followed, or when the operator verifies it",
        )


@dataclass(frozen=True)
class Pending:
    """A setting that waits for verification, and the token to mail to its address (None when
    no new token was issued)."""

    setting: EmailDeliverySetting
    token: str | None


async def create_setting(
    session: AsyncSession,
    organization_id: str,
    data: EmailDeliverySettingCreate,
    now: datetime,
    *,
    token_ttl: timedelta,
) -> Pending:
    now = now.replace(microsecond=0)
    _check_status_unchanged(data.status, SenderStatus.PENDING)
    await _check_unique_address(session, organization_id, data.from_, None)
    if data.credential_id is not None:
        await credentials.check_assignable(
            session, organization_id, data.credential_id, "credentialId"
        )
    setting = EmailDeliverySetting(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        from_address=data.from_,
        name=data.name,
        status=SenderStatus.PENDING,
        credential_id=data.credential_id,
        is_default=data.is_default,
        created_at=now,
        updated_at=now,
    )
    if data.is_default:
        await repository.clear_default(session, organization_id, setting.id)
        _forget_default(organization_id)
    token = _issue_token(setting, now, token_ttl)
    session.add(setting)
    await _flush(session)
    return Pending(setting, token)


async def update_setting(
    session: AsyncSession,
    organization_id: str,
    setting_id: str,
    data: EmailDeliverySettingPatch,
    now: datetime,
    *,
    token_ttl: timedelta,
) -> Pending:
    now = now.replace(microsecond=0)
    setting = await get_setting(session, organization_id, setting_id)
    given = data.model_fields_set
    _check_status_unchanged(data.status, setting.status)
    token = None
    if "from_" in given and data.from_ is not None and data.from_ != setting.from_address:
        await _check_unique_address(session, organization_id, data.from_, setting.id)
        setting.from_address = data.from_
        setting.status = SenderStatus.PENDING  # a new address is unverified
        token = _issue_token(setting, now, token_ttl)
    if "name" in given and data.name is not None:
        setting.name = data.name
    if "credential_id" in given:
        if data.credential_id is not None:
            await credentials.check_assignable(
                session, organization_id, data.credential_id, "credentialId"
            )
        setting.credential_id = data.credential_id
    if "is_default" in given and data.is_default is not None:
        if data.is_default:
            await repository.clear_default(session, organization_id, setting.id)
        setting.is_default = data.is_default
    setting.updated_at = now
    _forget_default(organization_id)
    await _flush(session)
    return Pending(setting, token)


async def renew_token(
    session: AsyncSession,
    organization_id: str,
    setting_id: str,
    now: datetime,
    *,
    token_ttl: timedelta,
) -> Pending:
    """A new token for a setting still pending (resend-email-verification); 409 once verified."""
    setting = await get_setting(session, organization_id, setting_id)
    if setting.status == SenderStatus.VERIFIED:
        raise Conflict(f"email delivery setting {setting_id} is already verified")
    token = _issue_token(setting, now.replace(microsecond=0), token_ttl)
    await session.flush()
    return Pending(setting, token)


async def find_by_token(
    session: AsyncSession, token: str, now: datetime
) -> EmailDeliverySetting | None:
    """The setting a mailed token verifies, while the token is valid."""
    setting = await repository.find_by_token_hash(session, _hash(token))
    expires = setting.verification_expires_at if setting is not None else None
    if setting is None or expires is None or expires <= now:
        return None
    return setting


async def verify_token(session: AsyncSession, token: str, now: datetime) -> EmailDeliverySetting:
    """The setting whose mailed token this is, now verified; the token works once. An unknown,
    used or expired token is a 404 (which of them is not said)."""
    setting = await find_by_token(session, token, now)
    if setting is None:
        raise NotFound("this verification link is not valid (used, expired or replaced)")
    _mark_verified(setting, now)
    await session.flush()
    return setting


def _mark_verified(setting: EmailDeliverySetting, now: datetime) -> None:
    _forget_default(setting.organization_id)
    setting.status = SenderStatus.VERIFIED
    setting.verification_token_hash = None
    setting.verification_expires_at = None
    setting.updated_at = now.replace(microsecond=0)


async def verify_as_operator(
    session: AsyncSession, setting_id: str, now: datetime
) -> EmailDeliverySetting:
    """The operator's word (CLI), for any organization's setting."""
    setting = await repository.get_any(session, setting_id)
    if setting is None:
        raise NotFound(f"email delivery setting {setting_id} not found")
    _mark_verified(setting, now)
    await session.flush()
    return setting


async def list_for_operator(
    session: AsyncSession, *, pending_only: bool
) -> list[EmailDeliverySetting]:
    """Every organization's settings, oldest first (CLI)."""
    return await repository.list_all(session, pending_only=pending_only)


async def get_setting(
    session: AsyncSession, organization_id: str, setting_id: str
) -> EmailDeliverySetting:
    setting = await repository.get(session, organization_id, setting_id)
    if setting is None:
        raise NotFound(f"email delivery setting {setting_id} not found")
    return setting


async def list_settings(
    session: AsyncSession, organization_id: str, query: ListQuery
) -> tuple[list[EmailDeliverySetting], int]:
    return await repository.list_page(session, organization_id, query)


async def delete_setting(session: AsyncSession, organization_id: str, setting_id: str) -> None:
    setting = await get_setting(session, organization_id, setting_id)
    if setting.is_default:
        # Deleting it would quietly move the organization's mail to the server-wide transport.
        raise Conflict(
            "this is the organization's default setting; make another one the default, or "
            "PATCH isDefault to false, before deleting it"
        )
    _forget_default(organization_id)
    await repository.delete_setting(session, setting)


async def providers_of(
    session: AsyncSession, organization_id: str, settings: list[EmailDeliverySetting]
) -> dict[str, str]:
    """The provider shown for each setting: its credential's type, or the server default."""
    types = await credentials.types_of(
        session, organization_id, {s.credential_id for s in settings if s.credential_id}
    )
    return {
        s.id: types.get(s.credential_id, SERVER_DEFAULT_PROVIDER)
        if s.credential_id
        else SERVER_DEFAULT_PROVIDER
        for s in settings
    }
