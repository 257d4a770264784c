"""The wire shape of /service-credentials/{type} (SmtpCredential.yaml, SmtpAuthorization*.yaml)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from postroom.api.wire import SelfLink, WireTime
from postroom.core.listing import ListField
from postroom.credentials.models import CredentialStatus

_strict = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


class SmtpAuthNone(BaseModel):
    model_config = _strict
    type: Literal["none"]


class SmtpAuthWithPassword(BaseModel):
    model_config = _strict
    type: Literal["plain", "login", "cram-md5"]
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024, json_schema_extra={"format": "password"})


SmtpAuth = Annotated[SmtpAuthNone | SmtpAuthWithPassword, Field(discriminator="type")]


class SmtpCredentialCreate(BaseModel):
    model_config = _strict
    type: Literal["smtp"] = "smtp"
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int = Field(25, ge=1, le=65535)
    encryption: Literal["none", "tls", "ssl"] = "none"
    auth: SmtpAuth = Field(default_factory=lambda: SmtpAuthNone(type="none"))


class CredentialPatch(BaseModel):
    model_config = _strict
    status: Literal["active", "inactive", "deactivated"]
    type: str | None = None


class SmtpAuthUserRead(BaseModel):
    """The auth block as shown: its type and username, never the password."""

    type: Literal["plain", "login", "cram-md5"]
    username: str


SmtpAuthRead = SmtpAuthNone | SmtpAuthUserRead


class SmtpCredentialRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    hash: str = Field(description="Deprecated: the same as id.")
    status: CredentialStatus
    deactivation_time: WireTime | None = Field(alias="deactivationTime")
    type: Literal["smtp"] = "smtp"
    host: str
    port: int
    encryption: Literal["none", "tls", "ssl"]
    auth: SmtpAuthRead
    links: list[SelfLink] = Field(alias="_links")


LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "status": ListField("status", choices=frozenset(CredentialStatus)),
}
