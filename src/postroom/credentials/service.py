"""Rules for service credentials: secrets encrypted on the way in and never shown again."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.credentials import repository
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.credentials.schemas import SmtpAuthWithPassword, SmtpCredentialCreate
from postroom.errors import Conflict, NotFound, invalid_field

ID_PREFIX = "crd_"
TYPES = ("smtp",)


@dataclass(frozen=True)
class DeliveryCredential:
    """What a transport needs: public settings and decrypted secrets (kept out of repr)."""

    id: str
    type: str
    status: str
    version: datetime
    settings: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)


def require_type(type_: str) -> None:
    if type_ not in TYPES:
        raise NotFound(f"credential type '{type_}' is not supported; supported: {', '.join(TYPES)}")


async def create_smtp_credential(
    session: AsyncSession,
    organization_id: str,
    data: SmtpCredentialCreate,
    box: SecretBox,
    now: datetime,
) -> ServiceCredential:
    now = now.replace(microsecond=0)
    auth: dict[str, Any] = {"type": data.auth.type}
    secrets: dict[str, str] = {}
    if isinstance(data.auth, SmtpAuthWithPassword):
        auth["username"] = data.auth.username
        secrets["password"] = data.auth.password
    credential = ServiceCredential(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        type="smtp",
        status=CredentialStatus.ACTIVE,
        settings={
            "host": data.host,
            "port": data.port,
            "encryption": data.encryption,
            "auth": auth,
        },
        secret=box.encrypt(json.dumps(secrets)) if secrets else None,
        created_at=now,
        updated_at=now,
    )
    session.add(credential)
    await session.flush()
    return credential


async def get_credential(
    session: AsyncSession, organization_id: str, type_: str, credential_id: str
) -> ServiceCredential:
    require_type(type_)
    credential = await repository.get(session, organization_id, credential_id, type_)
    if credential is None:
        raise NotFound(f"{type_} credential {credential_id} not found")
    return credential


async def list_credentials(
    session: AsyncSession, organization_id: str, type_: str, query: ListQuery
) -> tuple[list[ServiceCredential], int]:
    require_type(type_)
    return await repository.list_page(session, organization_id, type_, query)


async def change_status(
    session: AsyncSession,
    organization_id: str,
    type_: str,
    credential_id: str,
    status: CredentialStatus,
    now: datetime,
) -> ServiceCredential:
    credential = await get_credential(session, organization_id, type_, credential_id)
    updated = await repository.set_status(session, credential, status, now.replace(microsecond=0))
    if updated is None:
        raise Conflict("a deactivated credential cannot be changed")
    return updated


async def check_usable(session: AsyncSession, organization_id: str, credential_id: str) -> None:
    """For a message naming `credentialHash`: it must be one of the organization's credentials."""
    credential = await repository.get(session, organization_id, credential_id)
    if credential is None:
        raise invalid_field("credentialHash", f"no credential {credential_id} in this organization")
    if credential.status == CredentialStatus.DEACTIVATED:
        raise invalid_field("credentialHash", f"credential {credential_id} is deactivated")


async def load_for_delivery(
    session: AsyncSession, credential_ids: set[str], box: SecretBox
) -> dict[str, DeliveryCredential]:
    return {
        c.id: DeliveryCredential(
            id=c.id,
            type=c.type,
            status=c.status,
            version=c.updated_at,
            settings=c.settings,
            secrets=json.loads(box.decrypt(c.secret)) if c.secret else {},
        )
        for c in await repository.get_many(session, credential_ids)
    }
