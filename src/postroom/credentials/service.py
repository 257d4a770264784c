"""Rules for service credentials: secrets encrypted on the way in and never shown again."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.crypto import SecretBox
from postroom.core.destinations import DestinationPolicy
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery
from postroom.credentials import repository
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.credentials.schemas import (
    CredentialCreate,
    CredentialPatch,
    MailgunCredentialCreate,
    PostmarkCredentialCreate,
    SendGridCredentialCreate,
    SesCredentialCreate,
    SimulatorCredentialCreate,
    SmtpAuthPatchWithPassword,
    SmtpAuthWithPassword,
    SmtpCredentialCreate,
    WebhookAuthPatchWithPassword,
    WebhookAuthWithPassword,
    WebhookCredentialCreate,
)
from postroom.errors import NotFound, invalid_field

ID_PREFIX = "crd_"
TYPES = ("smtp", "sendgrid", "mailgun", "postmark", "aws-ses", "simulator", "webhook")
WEBHOOK = "webhook"  # HTTP auth for webhook requests: never a way to send mail


@dataclass(frozen=True)
class DeliveryCredential:
    """What a transport needs: public settings and decrypted secrets (kept out of repr)."""

    id: str
    type: str
    status: str
    # Changes whenever anything a transport is built from changes (delivery/worker.py keeps a
    # transport per credential until then): updated_at alone has whole seconds, and two changes
    # within one second would keep a transport with the old secret.
    version: str
    settings: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    max_send_rate: float | None = None
    organization_id: str = ""


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
            keys = {"event_verification_key": data.event_verification_key}
            return _given(keys), {"api_key": data.api_key}
        case MailgunCredentialCreate():
            settings = {"email_from": data.email_from, "domain": data.domain, "region": data.region}
            signing = {"webhook_signing_key": data.webhook_signing_key}
            return settings, {"api_key": data.api_key, **_given(signing)}
        case PostmarkCredentialCreate():
            username = {"events_username": data.events_username}
            password = {"events_password": data.events_password}
            return _given(username), {"server_token": data.server_api_token, **_given(password)}
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


def _given(values: dict[str, str | None]) -> dict[str, str]:
    """The optional fields that were given: a credential without them stores nothing for them."""
    return {k: v for k, v in values.items() if v is not None}


def _check_events_login(type_: str, settings: dict[str, Any], secrets: dict[str, str]) -> None:
    """Postmark's webhook sends both or neither: half a login would refuse every event."""
    if type_ != "postmark":
        return
    if settings.get("events_username") and not secrets.get("events_password"):
        raise invalid_field("eventsPassword", "give it with eventsUsername")
    if secrets.get("events_password") and not settings.get("events_username"):
        raise invalid_field("eventsUsername", "give it with eventsPassword")


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
    _check_events_login(data.type, settings, secrets)
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


# Where each PATCH field of a type is kept: ("settings" | "secrets", key). SMTP's `auth` is split.
_PLACES: dict[str, dict[str, tuple[str, str]]] = {
    "smtp": {
        "host": ("settings", "host"),
        "port": ("settings", "port"),
        "encryption": ("settings", "encryption"),
    },
    "sendgrid": {
        "api_key": ("secrets", "api_key"),
        "event_verification_key": ("settings", "event_verification_key"),
    },
    "mailgun": {
        "email_from": ("settings", "email_from"),
        "domain": ("settings", "domain"),
        "region": ("settings", "region"),
        "api_key": ("secrets", "api_key"),
        "webhook_signing_key": ("secrets", "webhook_signing_key"),
    },
    "postmark": {
        "server_api_token": ("secrets", "server_token"),
        "events_username": ("settings", "events_username"),
        "events_password": ("secrets", "events_password"),
    },
    "aws-ses": {
        "key": ("settings", "access_key"),
        "region": ("settings", "region"),
        "configuration_set_name": ("settings", "configuration_set"),
        "secret": ("secrets", "secret_key"),
    },
    "simulator": {},
    "webhook": {"host": ("settings", "host")},
}


# Optional settings that null on PATCH takes away (a credential without them stores none).
_OPTIONAL = {"event_verification_key", "events_username"}


def _patched(
    credential: ServiceCredential, given: dict[str, Any], box: SecretBox
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The credential's settings with the given fields applied, and its secrets when one of
    them changed (None: the stored secrets stay as they are)."""
    settings = dict(credential.settings)
    secrets: dict[str, str] | None = None
    places = _PLACES[credential.type]
    stored: dict[str, str] | None = None

    def stored_secrets() -> dict[str, str]:
        nonlocal stored
        if stored is None:
            stored = json.loads(box.decrypt(credential.secret)) if credential.secret else {}
        return dict(stored)

    for name, value in given.items():
        if name == "auth" and isinstance(
            value, SmtpAuthPatchWithPassword | WebhookAuthPatchWithPassword
        ):
            password = value.password or stored_secrets().get("password")
            if password is None:
                raise invalid_field("auth.password", "give the password: none is stored")
            settings["auth"] = {"type": value.type, "username": value.username}
            secrets = {"password": password}
        elif name == "auth":
            settings["auth"] = {"type": value.type}
            secrets = {}
        elif name in places:
            where, key = places[name]
            if where == "settings" and value is None and key in _OPTIONAL:
                settings.pop(key, None)
            elif where == "settings":
                settings[key] = value or None if key == "configuration_set" else value
            else:
                secrets = {**(stored_secrets() if secrets is None else secrets), key: value}
                if value is None:  # an optional secret taken away
                    secrets.pop(key)
    return settings, secrets


async def update_credential(
    session: AsyncSession,
    organization_id: str,
    type_: str,
    credential_id: str,
    patch: CredentialPatch,
    box: SecretBox,
    now: datetime,
    *,
    policy: DestinationPolicy | None = None,
) -> ServiceCredential:
    """Changes any field given; a secret given replaces the stored one. Deactivated is final.
    An SMTP credential left in use is checked against the destination `policy` again (its host
    may be new, or stored before the policy refused it); switching one off is always allowed."""
    credential = await get_credential(session, organization_id, type_, credential_id)
    given = patch.changes()
    status = CredentialStatus(given.pop("status")) if "status" in given else None
    if credential.status == CredentialStatus.DEACTIVATED:
        raise invalid_field(
            "status" if status is not None else _wire_name(patch, next(iter(given))),
            "the credential is deactivated, which is final: it cannot be changed or reactivated",
        )
    changes: dict[str, Any] = {}
    if "max_send_rate" in given:
        changes["max_send_rate"] = given.pop("max_send_rate")
    settings, secrets = _patched(credential, given, box)
    if secrets is None and credential.type == "postmark":
        stored = json.loads(box.decrypt(credential.secret)) if credential.secret else {}
        _check_events_login(credential.type, settings, stored)
    else:
        _check_events_login(credential.type, settings, secrets or {})
    stays_in_use = (status or credential.status) == CredentialStatus.ACTIVE
    if policy is not None and credential.type in {"smtp", WEBHOOK} and stays_in_use:
        check_destination(settings["host"], policy)
    if status is not None:
        changes["status"] = status
    if settings != credential.settings:
        changes["settings"] = settings
    if secrets is not None:
        changes["secret"] = box.encrypt(json.dumps(secrets)) if secrets else None
    updated = await repository.apply_changes(
        session, credential, changes, now.replace(microsecond=0)
    )
    if updated is None:
        # Deactivated by another request since it was read.
        raise invalid_field("status", "the credential is deactivated, which is final")
    return updated


def _wire_name(patch: BaseModel, name: str) -> str:
    return type(patch).model_fields[name].alias or name


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


def _version(credential: ServiceCredential) -> str:
    # The Fernet token of the secrets differs on every encryption, so a rotation always shows.
    state = json.dumps([credential.settings, credential.secret, credential.status], sort_keys=True)
    return f"{credential.updated_at.isoformat()} {hashlib.sha256(state.encode()).hexdigest()}"


async def load_for_delivery(
    session: AsyncSession, credential_ids: set[str], box: SecretBox
) -> dict[str, DeliveryCredential]:
    return {
        c.id: DeliveryCredential(
            id=c.id,
            type=c.type,
            status=c.status,
            version=_version(c),
            settings=c.settings,
            secrets=json.loads(box.decrypt(c.secret)) if c.secret else {},
            max_send_rate=c.max_send_rate,
            organization_id=c.organization_id,
        )
        for c in await repository.get_many(session, credential_ids)
    }
