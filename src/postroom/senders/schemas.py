"""The wire shape of /email-delivery-settings (components/schemas/EmailDeliverySetting.yaml)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from postroom.api.wire import SelfLink, TextLine, WireTime
from postroom.core.listing import FieldKind, ListField
from postroom.messages.schemas import EmailAddress
from postroom.senders.models import EmailDeliverySetting, SenderStatus

_strict = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


# The name becomes part of the From header.
SenderName = Annotated[TextLine, StringConstraints(min_length=1, max_length=255)]
STATUS_DOC = (
    "Read-only. `pending` until the link mailed to the address is followed (`PUT "
    "/email-delivery-setting-verifications/{token}`) or the operator verifies the setting; a "
    "message can use only a verified default setting. A request may send back the current "
    "value; another is a 422."
)
Provider = Literal["rebilly", "smtp", "aws-ses", "mailgun", "postmark", "sendgrid", "simulator"]


class EmailDeliverySettingCreate(BaseModel):
    """Read-only fields a client sends (id, provider, times) are ignored."""

    model_config = _strict
    from_: EmailAddress = Field(alias="from")
    name: SenderName
    credential_id: str | None = Field(None, alias="credentialId", max_length=50)
    is_default: bool = Field(False, alias="isDefault")
    status: Literal["pending", "verified"] | None = Field(None, description=STATUS_DOC)


class EmailDeliverySettingPatch(BaseModel):
    """Only the fields given change; a new `from` is pending again, and a new token is mailed."""

    model_config = _strict
    from_: EmailAddress | None = Field(None, alias="from")
    name: SenderName | None = None
    credential_id: str | None = Field(None, alias="credentialId", max_length=50)
    is_default: bool | None = Field(None, alias="isDefault")
    status: Literal["pending", "verified"] | None = Field(None, description=STATUS_DOC)


class EmailDeliverySettingRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    name: str
    status: SenderStatus = Field(description=STATUS_DOC)
    credential_id: str | None = Field(alias="credentialId")
    provider: Provider = Field(
        description="The credential's type; `rebilly` when there is none: the server-wide "
        "default transport (POSTROOM_SMTP_URL or .eml files)."
    )
    is_default: bool = Field(alias="isDefault")
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(
        cls, setting: EmailDeliverySetting, provider: str, href: str
    ) -> "EmailDeliverySettingRead":
        return cls(
            id=setting.id,
            from_=setting.from_address,
            name=setting.name,
            status=SenderStatus(setting.status),
            credential_id=setting.credential_id,
            provider=provider,
            is_default=setting.is_default,
            created_time=setting.created_at,
            updated_time=setting.updated_at,
            links=[SelfLink(href=href)],
        )


_TIME = FieldKind.DATETIME
LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "from": ListField("from_address"),
    "name": ListField("name"),
    "status": ListField("status", choices=frozenset(SenderStatus)),
    "credentialId": ListField("credential_id"),
    "createdTime": ListField("created_at", _TIME),
    "updatedTime": ListField("updated_at", _TIME),
}
