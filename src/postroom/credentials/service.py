"""Rules for service credentials: secrets encrypted on the way in and never shown again."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.crypto import SecretBox
from postroom.core.destinations import DestinationPolicy
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.credentials import repository
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.credentials.schemas import (
    CredentialCreate,
    MailgunCredentialCreate,
    PostmarkCredentialCreate,
    SendGridCredentialCreate,
    SesCredentialCreate,
    SimulatorCredentialCreate,
    SmtpAuthWithPassword,
    SmtpCredentialCreate,
    WebhookAuthWithPassword,
    WebhookCredentialCreate,
)
from postroom.errors import Conflict, NotFound, invalid_field

ID_PREFIX = "crd_"
TYPES = ("smtp", "sendgrid", "mailgun", "postmark", "aws-ses", "simulator", "webhook")
WEBHOOK = "webhook"  # HTTP auth for webhook requests: never a way to send mail


@dataclass(frozen=True)
class DeliveryCredential:
    """What a transport needs: public settings and decrypted secrets (kept out of repr)."""

    id: str
    type: str
    status: str
    version: datetime
    settings: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    max_send_rate: float | None = None


def require_type(type_: str) -> None:
    if type_ not in TYPES:
        raise NotFound(f"credential type '{type_}' is not supported; supported: {', '.join(TYPES)}")


def _split(data: CredentialCreate) -> tuple[dict[str, Any], dict[str, str]]:
    """The public settings (shown) and the secrets (encrypted, never shown) of a new credential."""
    match data:
        case SmtpCredentialCreate():
            auth: dict[str, Any] = {"type": data.auth.type}
            secrets: dict[str, str] = {}
            if isinstance(data.auth, SmtpAuthWithPassword):
                auth["username"] = data.auth.username
                secrets["password"] = data.auth.password
            settings = {
                "host": data.host,
                "port": data.port,
                "encryption": data.encryption,
                "auth": auth,
            }
            return settings, secrets
        case SendGridCredentialCreate():
            return {}, {"api_key": data.api_key}
        case MailgunCredentialCreate():
            settings = {"email_from": data.email_from, "domain": data.domain, "region": data.region}
            return settings, {"api_key": data.api_key}
        case PostmarkCredentialCreate():
            return {}, {"server_token": data.server_api_token}
        case SesCredentialCreate():
            settings = {
                "access_key": data.key,
                "region": data.region,
                "configuration_set": data.configuration_set_name,
            }
            return settings, {"secret_key": data.secret}
        case WebhookCredentialCreate():
            webhook_auth: dict[str, Any] = {"type": data.auth.type}
            webhook_secrets: dict[str, str] = {}
            if isinstance(data.auth, WebhookAuthWithPassword):
                webhook_auth["username"] = data.auth.username
                webhook_secrets["password"] = data.auth.password
            return {"host": data.host, "auth": webhook_auth}, webhook_secrets
        case SimulatorCredentialCreate():
            return {}, {}


def check_destination(host: str, policy: DestinationPolicy) -> None:
    """A 422 on `host` for an address the destination policy refuses, in any spelling; a name
    is judged by what it resolves to when the worker connects."""
    refusal = policy.refusal(host)
    if refusal is not None:
        raise invalid_field("host", refusal)


async def create_credential(
    session: AsyncSession,
    organization_id: str,
    data: CredentialCreate,
    box: SecretBox,
    now: datetime,
) -> ServiceCredential:
    now = now.replace(microsecond=0)
    settings, secrets = _split(data)
    credential = ServiceCredential(
        id=new_id(ID_PREFIX),
        organization_id=organization_id,
        type=data.type,
        status=CredentialStatus.ACTIVE,
        settings=settings,
        secret=box.encrypt(json.dumps(secrets)) if secrets else None,
        max_send_rate=data.max_send_rate,
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


async def update_credential(
    session: AsyncSession,
    organization_id: str,
    type_: str,
    credential_id: str,
    now: datetime,
    *,
    status: CredentialStatus | None = None,
    set_rate: bool = False,
    max_send_rate: float | None = None,
    policy: DestinationPolicy | None = None,
) -> ServiceCredential:
    """Changes the status and/or (with `set_rate`) the send rate; deactivated is final. An SMTP
    credential left in use is checked against the destination `policy` again (it may have been
    stored before the policy refused its host); switching one off is always allowed."""
    credential = await get_credential(session, organization_id, type_, credential_id)
    stays_in_use = (status or credential.status) == CredentialStatus.ACTIVE
    if policy is not None and credential.type == "smtp" and stays_in_use:
        check_destination(credential.settings["host"], policy)
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = status
    if set_rate:
        changes["max_send_rate"] = max_send_rate
    updated = await repository.apply_changes(
        session, credential, changes, now.replace(microsecond=0)
    )
    if updated is None:
        raise Conflict("a deactivated credential cannot be changed")
    return updated


async def check_usable(session: AsyncSession, organization_id: str, credential_id: str) -> None:
    """For a message naming `credentialHash`: it must be one of the organization's credentials."""
    await check_assignable(session, organization_id, credential_id, "credentialHash")


async def check_assignable(
    session: AsyncSession,
    organization_id: str,
    credential_id: str,
    field_name: str,
    *,
    for_webhook: bool = False,
) -> ServiceCredential:
    """For another resource pointing at a credential: it must be the organization's own, not
    deactivated, and of the right kind (a `webhook` one for a webhook, any other for mail); a
    422 naming `field_name` otherwise."""
    credential = await repository.get(session, organization_id, credential_id)
    if credential is None:
        raise invalid_field(field_name, f"no credential {credential_id} in this organization")
    if credential.status == CredentialStatus.DEACTIVATED:
        raise invalid_field(field_name, f"credential {credential_id} is deactivated")
    if for_webhook != (credential.type == WEBHOOK):
        kind = "a webhook" if for_webhook else "a mail"
        raise invalid_field(field_name, f"credential {credential_id} is not {kind} credential")
    return credential


async def types_of(
    session: AsyncSession, organization_id: str, credential_ids: set[str]
) -> dict[str, str]:
    """The type of each of these credentials of the organization, by id."""
    return {
        c.id: c.type
        for c in await repository.get_many(session, credential_ids)
        if c.organization_id == organization_id
    }


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
            max_send_rate=c.max_send_rate,
        )
        for c in await repository.get_many(session, credential_ids)
    }
