"""The wire shape of /service-credentials/{type}: SmtpCredential.yaml, SendGridCredential.yaml,
MailgunCredential.yaml, PostmarkCredential.yaml, SESCredential.yaml, WebhookCredential.yaml
(HTTP auth for webhooks, not for mail), and postroom's own `simulator`. Secret fields are
write-only: accepted on create, never part of a read model."""

import base64
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import core_schema

from postroom.api.wire import SecretLine, SelfLink, WireTime
from postroom.core.ecdsa import MAX_KEY_TEXT, InvalidKey, load_p256_public_key
from postroom.core.listing import ListField
from postroom.credentials.models import CredentialStatus, ServiceCredential
from postroom.messages.schemas import EmailAddress

_strict = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

Secret = Annotated[
    SecretLine,
    Field(
        min_length=1, max_length=1024, json_schema_extra={"format": "password", "writeOnly": True}
    ),
]
MAX_SEND_RATE_DOC = (
    "postroom's extension: at most this many messages per second go out through this "
    "credential, counted across every delivery worker; the rest wait in `outbox` (not an "
    "attempt, not a failure). null: no limit."
)
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"^{_LABEL}(\.{_LABEL})+$"
_AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"


def _p256_key(text: str) -> str:
    """The key as base64 DER (SendGrid shows it so; PEM framing and line breaks dropped)."""
    try:
        key = load_p256_public_key(text)
    except InvalidKey as error:
        raise ValueError(str(error)) from error
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


VerificationKey = Annotated[
    str, Field(min_length=1, max_length=MAX_KEY_TEXT), AfterValidator(_p256_key)
]
EVENT_VERIFICATION_KEY_DOC = (
    "postroom's extension: the verification key SendGrid shows for its Signed Event Webhook "
    "(base64 ECDSA P-256 public key); events sent to `eventsUrl` are refused without it. "
    "null on PATCH: removed."
)
WEBHOOK_SIGNING_KEY_DOC = (
    "postroom's extension: Mailgun's HTTP webhook signing key; events sent to `eventsUrl` are "
    "refused without it. Write-only; null on PATCH: removed."
)
EVENTS_USERNAME_DOC = (
    "postroom's extension: the username Postmark's webhook URL carries "
    "(`https://user:password@host/...`); events sent to `eventsUrl` are refused without it and "
    "`eventsPassword`. null on PATCH: removed."
)
EVENTS_AUTH_DOC = (
    "postroom's extension: the password Postmark's webhook URL carries. Write-only; null on "
    "PATCH: removed."
)
# RFC 7617: a basic-auth user-id cannot hold a colon.
EventsUsername = Annotated[SecretLine, Field(min_length=1, max_length=255, pattern=r"^[^:]+$")]


class _CredentialCreate(BaseModel):
    model_config = _strict
    max_send_rate: float | None = Field(
        None, alias="maxSendRate", gt=0, le=100_000, description=MAX_SEND_RATE_DOC
    )


class SmtpAuthNone(BaseModel):
    model_config = _strict
    type: Literal["none"]


class SmtpAuthWithPassword(BaseModel):
    model_config = _strict
    type: Literal["plain", "login", "cram-md5"]
    username: SecretLine = Field(min_length=1, max_length=255)
    password: SecretLine = Field(
        min_length=1, max_length=1024, json_schema_extra={"format": "password"}
    )


SmtpAuth = Annotated[SmtpAuthNone | SmtpAuthWithPassword, Field(discriminator="type")]


class SmtpCredentialCreate(_CredentialCreate):
    type: Literal["smtp"]
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int = Field(25, ge=1, le=65535)
    encryption: Literal["none", "tls", "ssl"] = "none"
    auth: SmtpAuth = Field(default_factory=lambda: SmtpAuthNone(type="none"))


class SendGridCredentialCreate(_CredentialCreate):
    type: Literal["sendgrid"]
    api_key: Secret = Field(alias="apiKey", description="SendGrid API key.")
    event_verification_key: VerificationKey | None = Field(
        None, alias="eventVerificationKey", description=EVENT_VERIFICATION_KEY_DOC
    )


class MailgunCredentialCreate(_CredentialCreate):
    type: Literal["mailgun"]
    email_from: EmailAddress = Field(
        alias="emailFrom",
        description="Address from which emails are sent (kept and shown; each message is sent "
        "from its own `from`).",
    )
    api_key: Secret = Field(alias="apiKey", description="Mailgun API key.")
    domain: str = Field(max_length=253, pattern=_HOSTNAME, description="Mailgun domain.")
    region: Literal["us", "eu"] = Field(
        "us", description="postroom's extension: the region of the Mailgun domain (its API host)."
    )
    webhook_signing_key: Secret | None = Field(
        None, alias="webhookSigningKey", description=WEBHOOK_SIGNING_KEY_DOC
    )


class PostmarkCredentialCreate(_CredentialCreate):
    type: Literal["postmark"]
    server_api_token: Secret = Field(alias="serverApiToken", description="Postmark server token.")
    events_username: EventsUsername | None = Field(
        None, alias="eventsUsername", description=EVENTS_USERNAME_DOC
    )
    events_password: Secret | None = Field(
        None, alias="eventsPassword", description=EVENTS_AUTH_DOC
    )


class SesCredentialCreate(_CredentialCreate):
    type: Literal["aws-ses"]
    key: str = Field(
        min_length=16, max_length=128, pattern=r"^[A-Z0-9]+$", description="AWS access key ID."
    )
    secret: Secret = Field(description="Secret AWS access key.")
    region: str = Field(max_length=32, pattern=_AWS_REGION, description="AWS region name.")
    configuration_set_name: str | None = Field(
        None, alias="configurationSetName", max_length=64, pattern=r"^[A-Za-z0-9_\-]+$"
    )


class WebhookAuthNone(BaseModel):
    model_config = _strict
    type: Literal["none"]


class WebhookAuthWithPassword(BaseModel):
    """WebhookAuthorizationBasic.yaml and WebhookAuthorizationDigest.yaml."""

    model_config = _strict
    type: Literal["basic", "digest"]
    username: SecretLine = Field(min_length=1, max_length=255)
    password: Secret


WebhookAuth = Annotated[WebhookAuthNone | WebhookAuthWithPassword, Field(discriminator="type")]


class WebhookCredentialCreate(_CredentialCreate):
    type: Literal["webhook"]
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9-.]+$")
    auth: WebhookAuth = Field(default_factory=lambda: WebhookAuthNone(type="none"))


class SimulatorCredentialCreate(_CredentialCreate):
    """postroom's own type: sends nothing, answers by recipient address (see the README)."""

    type: Literal["simulator"]


CredentialCreate = Annotated[
    SmtpCredentialCreate
    | SendGridCredentialCreate
    | MailgunCredentialCreate
    | PostmarkCredentialCreate
    | SesCredentialCreate
    | WebhookCredentialCreate
    | SimulatorCredentialCreate,
    Field(discriminator="type"),
]


class _NotNull:
    """A PATCH field that may be left out (it is kept) but not set to null: the credential
    needs it. Validated, named in errors and documented as its type without the None."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        if schema["type"] == "nullable":
            inner: core_schema.CoreSchema = schema["schema"]
            return inner
        if schema["type"] == "union":
            choices = [c[0] if isinstance(c, tuple) else c for c in schema["choices"]]
            kept: list[core_schema.CoreSchema] = [c for c in choices if c["type"] != "none"]
            if len(kept) == 1:
                return kept[0]
        return schema


NotNull = _NotNull()
Host = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Encryption = Literal["none", "tls", "ssl"]
MailgunDomain = Annotated[str, Field(max_length=253, pattern=_HOSTNAME)]
MailgunRegion = Literal["us", "eu"]
AwsKey = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Z0-9]+$")]
AwsRegion = Annotated[str, Field(max_length=32, pattern=_AWS_REGION)]


class SmtpAuthPatchWithPassword(BaseModel):
    """As on create, but the password may be left out to keep the stored one (a credential read
    back and sent again has none)."""

    model_config = _strict
    type: Literal["plain", "login", "cram-md5"]
    username: SecretLine = Field(min_length=1, max_length=255)
    password: SecretLine | None = Field(
        None, min_length=1, max_length=1024, json_schema_extra={"format": "password"}
    )


SmtpAuthPatch = Annotated[SmtpAuthNone | SmtpAuthPatchWithPassword, Field(discriminator="type")]


class _CredentialPatch(BaseModel):
    """Any field of the type may be given; what is left out stays. A secret given replaces the
    stored one."""

    model_config = _strict
    status: Annotated[
        Literal["active", "inactive", "deactivated"] | SkipJsonSchema[None], NotNull
    ] = None
    max_send_rate: float | None = Field(
        None, alias="maxSendRate", gt=0, le=100_000, description=MAX_SEND_RATE_DOC
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> "_CredentialPatch":
        if not self.model_fields_set - {"type"}:
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, by attribute name, without `type`."""
        return {name: getattr(self, name) for name in self.model_fields_set - {"type"}}


class SmtpCredentialPatch(_CredentialPatch):
    type: Literal["smtp"]
    host: Annotated[Host | None, NotNull] = None
    port: Annotated[Port | None, NotNull] = None
    encryption: Annotated[Encryption | None, NotNull] = None
    auth: Annotated[SmtpAuthPatch | None, NotNull] = None


class SendGridCredentialPatch(_CredentialPatch):
    type: Literal["sendgrid"]
    api_key: Annotated[Secret | None, NotNull] = Field(None, alias="apiKey")
    event_verification_key: VerificationKey | None = Field(
        None, alias="eventVerificationKey", description=EVENT_VERIFICATION_KEY_DOC
    )


class MailgunCredentialPatch(_CredentialPatch):
    type: Literal["mailgun"]
    email_from: Annotated[EmailAddress | None, NotNull] = Field(None, alias="emailFrom")
    api_key: Annotated[Secret | None, NotNull] = Field(None, alias="apiKey")
    domain: Annotated[MailgunDomain | None, NotNull] = None
    region: Annotated[MailgunRegion | None, NotNull] = None
    webhook_signing_key: Secret | None = Field(
        None, alias="webhookSigningKey", description=WEBHOOK_SIGNING_KEY_DOC
    )


class PostmarkCredentialPatch(_CredentialPatch):
    type: Literal["postmark"]
    server_api_token: Annotated[Secret | None, NotNull] = Field(None, alias="serverApiToken")
    events_username: EventsUsername | None = Field(
        None, alias="eventsUsername", description=EVENTS_USERNAME_DOC
    )
    events_password: Secret | None = Field(
        None, alias="eventsPassword", description=EVENTS_AUTH_DOC
    )


class SesCredentialPatch(_CredentialPatch):
    type: Literal["aws-ses"]
    key: Annotated[AwsKey | None, NotNull] = None
    secret: Annotated[Secret | None, NotNull] = None
    region: Annotated[AwsRegion | None, NotNull] = None
    # null (or "") takes the configuration set away.
    configuration_set_name: str | None = Field(
        None, alias="configurationSetName", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$"
    )


class SimulatorCredentialPatch(_CredentialPatch):
    type: Literal["simulator"]


class WebhookAuthPatchWithPassword(BaseModel):
    """As on create, but the password may be left out to keep the stored one."""

    model_config = _strict
    type: Literal["basic", "digest"]
    username: SecretLine = Field(min_length=1, max_length=255)
    password: Secret | None = None


WebhookAuthPatch = Annotated[
    WebhookAuthNone | WebhookAuthPatchWithPassword, Field(discriminator="type")
]


class WebhookCredentialPatch(_CredentialPatch):
    type: Literal["webhook"]
    host: Annotated[
        Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9-.]+$")] | None,
        NotNull,
    ] = None
    auth: Annotated[WebhookAuthPatch | None, NotNull] = None


CredentialPatch = Annotated[
    SmtpCredentialPatch
    | SendGridCredentialPatch
    | MailgunCredentialPatch
    | PostmarkCredentialPatch
    | SesCredentialPatch
    | SimulatorCredentialPatch
    | WebhookCredentialPatch,
    Field(discriminator="type"),
]


class SmtpAuthUserRead(BaseModel):
    """The auth block as shown: its type and username, never the password."""

    type: Literal["plain", "login", "cram-md5"]
    username: str


SmtpAuthRead = SmtpAuthNone | SmtpAuthUserRead


class WebhookAuthUserRead(BaseModel):
    """The auth block as shown: its type and username, never the password."""

    type: Literal["basic", "digest"]
    username: str


WebhookAuthRead = WebhookAuthNone | WebhookAuthUserRead


class _CredentialRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    hash: str = Field(description="Deprecated: the same as id.")
    status: CredentialStatus
    deactivation_time: WireTime | None = Field(alias="deactivationTime")
    max_send_rate: float | None = Field(alias="maxSendRate", description=MAX_SEND_RATE_DOC)
    links: list[SelfLink] = Field(alias="_links")


class _ProviderCredentialRead(_CredentialRead):
    events_url: str = Field(
        alias="eventsUrl",
        description="postroom's own: where to point the provider's event webhook (delivered, "
        "bounced, complained…); unguessable, and the provider's signing is checked too",
    )


class SmtpCredentialRead(_CredentialRead):
    type: Literal["smtp"] = "smtp"
    host: str
    port: int
    encryption: Literal["none", "tls", "ssl"]
    auth: SmtpAuthRead


class SendGridCredentialRead(_ProviderCredentialRead):
    type: Literal["sendgrid"] = "sendgrid"
    # Left out when unset, as Rebilly's shape has no such field.
    event_verification_key: SkipJsonSchema[None] | str = Field(
        None,
        alias="eventVerificationKey",
        description=EVENT_VERIFICATION_KEY_DOC,
        exclude_if=lambda value: value is None,
    )


class MailgunCredentialRead(_ProviderCredentialRead):
    type: Literal["mailgun"] = "mailgun"
    email_from: str = Field(alias="emailFrom")
    domain: str
    region: Literal["us", "eu"]


class PostmarkCredentialRead(_ProviderCredentialRead):
    type: Literal["postmark"] = "postmark"
    # Left out when unset, as Rebilly's shape has no such field.
    events_username: SkipJsonSchema[None] | str = Field(
        None,
        alias="eventsUsername",
        description=EVENTS_USERNAME_DOC,
        exclude_if=lambda value: value is None,
    )


class SesCredentialRead(_ProviderCredentialRead):
    type: Literal["aws-ses"] = "aws-ses"
    key: str
    region: str
    # Left out when unset: Rebilly's schema types it as a plain string.
    configuration_set_name: SkipJsonSchema[None] | str = Field(
        None, alias="configurationSetName", exclude_if=lambda value: value is None
    )


class WebhookCredentialRead(_CredentialRead):
    type: Literal["webhook"] = "webhook"
    host: str
    auth: WebhookAuthRead


class SimulatorCredentialRead(_CredentialRead):
    type: Literal["simulator"] = "simulator"


CredentialRead = Annotated[
    SmtpCredentialRead
    | SendGridCredentialRead
    | MailgunCredentialRead
    | PostmarkCredentialRead
    | SesCredentialRead
    | WebhookCredentialRead
    | SimulatorCredentialRead,
    Field(discriminator="type"),
]


def _auth(auth: dict[str, str]) -> SmtpAuthRead:
    if auth["type"] == "none":
        return SmtpAuthNone(type="none")
    return SmtpAuthUserRead.model_validate(auth)


def read_model(credential: ServiceCredential, href: str, events_url: str = "") -> CredentialRead:
    """The credential as shown: its public settings, never a secret (those are only in
    `credential.secret`, which this never reads). `events_url`: its provider events endpoint."""
    common: dict[str, Any] = {
        "id": credential.id,
        "hash": credential.id,
        "status": CredentialStatus(credential.status),
        "deactivation_time": credential.deactivated_at,
        "max_send_rate": credential.max_send_rate,
        "links": [SelfLink(href=href)],
    }
    settings = credential.settings
    match credential.type:
        case "smtp":
            return SmtpCredentialRead(
                **common,
                host=settings["host"],
                port=settings["port"],
                encryption=settings["encryption"],
                auth=_auth(settings["auth"]),
            )
        case "sendgrid":
            return SendGridCredentialRead(
                **common,
                events_url=events_url,
                event_verification_key=settings.get("event_verification_key"),
            )
        case "mailgun":
            return MailgunCredentialRead(
                **common,
                events_url=events_url,
                email_from=settings["email_from"],
                domain=settings["domain"],
                region=settings["region"],
            )
        case "postmark":
            return PostmarkCredentialRead(
                **common, events_url=events_url, events_username=settings.get("events_username")
            )
        case "aws-ses":
            return SesCredentialRead(
                **common,
                events_url=events_url,
                key=settings["access_key"],
                region=settings["region"],
                configuration_set_name=settings.get("configuration_set"),
            )
        case "webhook":
            auth = settings["auth"]
            return WebhookCredentialRead(
                **common,
                host=settings["host"],
                auth=WebhookAuthNone(type="none")
                if auth["type"] == "none"
                else WebhookAuthUserRead.model_validate(auth),
            )
        case "simulator":
            return SimulatorCredentialRead(**common)
    raise ValueError(f"credential {credential.id} has an unknown type {credential.type}")


LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "status": ListField("status", choices=frozenset(CredentialStatus)),
}
