"""Rules for email delivery settings: sender addresses with a name and a credential, at most one
default per organization, and the sender a message with no credential goes out as."""

from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class Sender:
    """What a message takes from its organization's default setting when it enters outbox."""

    name: str
    credential_id: str | None


async def sender_for(
    session: AsyncSession, organization_id: str, from_address: str
) -> Sender | None:
    """For a message that names no credential: the organization's default setting, whose address
    the message's `from` must be (a 422 naming `from` otherwise); None without a default, when
    the server-wide default transport sends it."""
    default = await repository.get_default(session, organization_id)
    if default is None:
        return None
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


async def create_setting(
    session: AsyncSession, organization_id: str, data: EmailDeliverySettingCreate, now: datetime
) -> EmailDeliverySetting:
    now = now.replace(microsecond=0)
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
        status=data.status,
        credential_id=data.credential_id,
        is_default=data.is_default,
        created_at=now,
        updated_at=now,
    )
    if data.is_default:
        await repository.clear_default(session, organization_id, setting.id)
    session.add(setting)
    await _flush(session)
    return setting


async def update_setting(
    session: AsyncSession,
    organization_id: str,
    setting_id: str,
    data: EmailDeliverySettingPatch,
    now: datetime,
) -> EmailDeliverySetting:
    setting = await get_setting(session, organization_id, setting_id)
    given = data.model_fields_set
    if "from_" in given and data.from_ is not None and data.from_ != setting.from_address:
        await _check_unique_address(session, organization_id, data.from_, setting.id)
        setting.from_address = data.from_
        setting.status = SenderStatus.PENDING  # a new address is unverified
    if "name" in given and data.name is not None:
        setting.name = data.name
    if "credential_id" in given:
        if data.credential_id is not None:
            await credentials.check_assignable(
                session, organization_id, data.credential_id, "credentialId"
            )
        setting.credential_id = data.credential_id
    if "status" in given and data.status is not None:
        setting.status = data.status
    if "is_default" in given and data.is_default is not None:
        if data.is_default:
            await repository.clear_default(session, organization_id, setting.id)
        setting.is_default = data.is_default
    setting.updated_at = now.replace(microsecond=0)
    await _flush(session)
    return setting


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
