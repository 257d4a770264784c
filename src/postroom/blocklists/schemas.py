"""The wire shape of /blocklists (components/schemas/Blocklist.yaml), types email and
email-domain."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from postroom.api.wire import SelfLink, WireStr, WireTime
from postroom.blocklists.models import BlocklistEntry, BlocklistSource, BlocklistType
from postroom.core.listing import FieldKind, ListField
from postroom.messages.schemas import EmailAddress

_address = TypeAdapter(EmailAddress)


def _text(value: object) -> object:
    # Not a number of seconds, which pydantic's lax datetime would take.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must name its time zone (Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


WireTimeIn = Annotated[
    datetime, BeforeValidator(_text), Field(strict=False), AfterValidator(_aware_utc)
]


def _problem(value: str) -> str | None:
    """Why the address is refused, as the messages' `to` would say it (None: it is valid)."""
    try:
        _address.validate_python(value)
    except ValidationError as error:
        return str(error.errors()[0]["msg"])
    return None


class BlocklistWrite(BaseModel):
    """A blocklist entry as POST and PUT give it. Read-only fields sent are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    type: Literal["email", "email-domain"] = Field(
        description="Of Rebilly's types, postroom keeps `email` and `email-domain`."
    )
    value: Annotated[
        WireStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)
    ] = Field(
        description="An email address (type `email`) or a domain (`email-domain`); stored "
        "lower-cased, an internationalized domain in its ASCII form (xn--)."
    )
    expiration_time: WireTimeIn | None = Field(
        None,
        alias="expirationTime",
        description="From then on the entry blocks nothing; null: never expires.",
    )

    @field_validator("value")
    @classmethod
    def _valid_for_type(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind == BlocklistType.EMAIL:
            problem = _problem(value)
        elif kind == BlocklistType.EMAIL_DOMAIN:
            problem = (
                "a domain has no @ (use type email for an address)"
                if "@" in value
                else _problem(f"postmaster@{value}")
            )
        else:
            return value  # `type` is refused on its own
        if problem is not None:
            raise ValueError(problem)
        return value.lower()


class BlocklistRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    type: BlocklistType
    value: str
    expiration_time: WireTime | None = Field(alias="expirationTime")
    source: BlocklistSource = Field(
        description="automated-blocklists: a hard bounce, a complaint or repeated soft bounces "
        "added it; manual-blocklists: the API."
    )
    entity_id: str | None = Field(
        alias="entityId", description="The message whose bounce or complaint added it."
    )
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(cls, entry: BlocklistEntry, href: str) -> "BlocklistRead":
        return cls(
            id=entry.id,
            type=BlocklistType(entry.type),
            value=entry.value,
            expiration_time=entry.expiration_time,
            source=BlocklistSource(entry.source),
            entity_id=entry.entity_id,
            created_time=entry.created_time,
            updated_time=entry.updated_time,
            links=[SelfLink(href=href)],
        )


_TIME = FieldKind.DATETIME
LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "type": ListField("type", choices=frozenset(BlocklistType)),
    "value": ListField("value"),
    "source": ListField("source", choices=frozenset(BlocklistSource)),
    "entityId": ListField("entity_id"),
    "expirationTime": ListField("expiration_time", _TIME),
    "createdTime": ListField("created_time", _TIME),
    "updatedTime": ListField("updated_time", _TIME),
}
