"""The wire shape of /service-credentials/{type}: SmtpCredential.yaml, SendGridCredential.yaml,
MailgunCredential.yaml, PostmarkCredential.yaml, SESCredential.yaml, WebhookCredential.yaml
(HTTP auth for webhooks, not for mail), and postroom's own `simulator`. Secret fields are
write-only: accepted on create, never part of a read model."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from postroom.api.wire import SecretLine, SelfLink, WireTime
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


class PostmarkCredentialCreate(_CredentialCreate):
    type: Literal["postmark"]
    server_api_token: Secret = Field(alias="serverApiToken", description="Postmark server token.")


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


class CredentialPatch(BaseModel):
    model_config = _strict
    status: Literal["active", "inactive", "deactivated"] | None = None
    type: str | None = None
    max_send_rate: float | None = Field(
        None, alias="maxSendRate", gt=0, le=100_000, description=MAX_SEND_RATE_DOC
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> "CredentialPatch":
        if self.status is None and "max_send_rate" not in self.model_fields_set:
            raise ValueError("give a status (or maxSendRate) to change")
        return self


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


class SmtpCredentialRead(_CredentialRead):
    type: Literal["smtp"] = "smtp"
    host: str
    port: int
    encryption: Literal["none", "tls", "ssl"]
    auth: SmtpAuthRead


class SendGridCredentialRead(_CredentialRead):
    type: Literal["sendgrid"] = "sendgrid"


class MailgunCredentialRead(_CredentialRead):
    type: Literal["mailgun"] = "mailgun"
    email_from: str = Field(alias="emailFrom")
    domain: str
    region: Literal["us", "eu"]


class PostmarkCredentialRead(_CredentialRead):
    type: Literal["postmark"] = "postmark"


class SesCredentialRead(_CredentialRead):
    type: Literal["aws-ses"] = "aws-ses"
    key: str
    region: str
    configuration_set_name: str | None = Field(alias="configurationSetName")


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


def read_model(credential: ServiceCredential, href: str) -> CredentialRead:
    """The credential as shown: its public settings, never a secret (those are only in
    `credential.secret`, which this never reads)."""
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
            return SendGridCredentialRead(**common)
        case "mailgun":
            return MailgunCredentialRead(
                **common,
                email_from=settings["email_from"],
                domain=settings["domain"],
                region=settings["region"],
            )
        case "postmark":
            return PostmarkCredentialRead(**common)
        case "aws-ses":
            return SesCredentialRead(
                **common,
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
