"""The wire shape of /api-keys and /organizations (schemas/ApiKey.yaml, Organization.yaml)."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from postroom.api.wire import SelfLink, TextLine, WireTime
from postroom.auth.models import ApiKey, Organization
from postroom.core.listing import FieldKind, ListField


def _nothing_restricted(value: Any) -> Any:
    # A restricted key would be a promise postroom does not keep: every key reaches the whole
    # organization. An empty list (the SDK's default) restricts nothing.
    if value:
        raise ValueError("restricted keys are not supported: every key reaches its organization")
    return value


class ApiKeyWrite(BaseModel):
    """Create and PUT: the description; `type` only `secret`. Read-only fields sent back (id,
    secretKey, times, _links, apiUser) are ignored, as Rebilly's SDK sends what it read."""

    model_config = ConfigDict(extra="ignore", strict=True)

    description: Annotated[TextLine, Field(min_length=1, max_length=200)]
    type: Literal["secret"] = "secret"
    acl: Annotated[list[Any] | None, AfterValidator(_nothing_restricted)] = None
    allowed_ips: Annotated[list[Any] | None, AfterValidator(_nothing_restricted)] = Field(
        None, alias="allowedIps"
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    description: str
    type: Literal["secret"] = "secret"
    secret_key: str | None = Field(
        None,
        alias="secretKey",
        description="The key itself: in the answer to its creation only, never again.",
        exclude_if=lambda value: value is None,
    )
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(cls, key: ApiKey, href: str, secret_key: str | None = None) -> "ApiKeyRead":
        return cls(
            id=key.id,
            description=key.name,
            secret_key=secret_key,
            created_time=key.created_at,
            updated_time=key.updated_at,
            links=[SelfLink(href=href)],
        )


class OrganizationRead(BaseModel):
    """The properties postroom keeps; Rebilly's others (country, address, …) are left out."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    created_time: WireTime = Field(alias="createdTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(cls, organization: Organization, href: str) -> "OrganizationRead":
        return cls(
            id=organization.id,
            name=organization.name,
            created_time=organization.created_at,
            links=[SelfLink(href=href)],
        )


API_KEY_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "description": ListField("name"),
    "createdTime": ListField("created_at", kind=FieldKind.DATETIME),
    "updatedTime": ListField("updated_at", kind=FieldKind.DATETIME),
}
