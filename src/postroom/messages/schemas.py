"""The wire shape of /email-messages (components/schemas/EmailMessage.yaml)."""

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from postroom.api.wire import TextLine, WireStr, WireTime
from postroom.core.addresses import developer_domains_allowed, is_developer_domain
from postroom.core.listing import FieldKind, ListField
from postroom.messages.headers import refusal
from postroom.messages.models import EmailMessage, MessageStatus


@lru_cache(maxsize=4096)
def _address_problem(value: str) -> str | None:
    """Why email-validator refuses the address (None: it is valid). A pure function of the
    address, remembered: the same senders and many of the same recipients come back request
    after request, and one check costs ~0.1 ms of CPU (IDNA and Unicode tables)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return None


def _valid_address(value: str) -> str:
    """The address as typed, once email-validator finds it valid. Not its `.normalized` form,
    which writes a punycode domain (xn--) in Unicode: that is another address to a server
    without IDNA support, and makes a message need SMTPUTF8 that did not. An address at a
    developer domain (core/addresses.py) is taken where the operator allows those, its local
    part checked as any other."""
    local, at, domain = value.rpartition("@")
    developer = bool(at) and is_developer_domain(domain)
    if developer and not developer_domains_allowed():
        raise PydanticCustomError(
            "email_address",
            "{domain} is a domain reserved for testing (.test, .example, localhost), which "
            "mail servers on the internet refuse; this server accepts it only with "
            "POSTROOM_DEVELOPER_DOMAINS=true",
            {"domain": domain},
        )
    problem = _address_problem(value)
    if problem is not None and developer:
        # email-validator refuses .test and localhost as special-use names: judge the rest of
        # the address (local part, every label) under a name it takes.
        problem = _address_problem(f"{local}@{domain}.example.com")
    if problem is not None:
        raise PydanticCustomError(
            "email_address", "not a valid email address: {problem}", {"problem": problem}
        )
    return value


EmailAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_valid_address),
]


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339_time(value: Any) -> Any:
    """An RFC 3339 date-time with its offset, as an aware UTC datetime. Nothing looser (a Unix
    timestamp, a date alone, a time with no offset): a time without its zone is a guess."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "rfc3339", "must be an RFC 3339 date-time with an offset, e.g. 2026-12-05T09:00:00Z"
        )
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("rfc3339", "not a valid date-time") from None


ScheduledTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
SCHEDULED_TIME_DOC = (
    "When to send the message (RFC 3339), at most POSTROOM_DELIVERY__MAX_SCHEDULE_DAYS (30) "
    "days ahead; null or absent: at once. A time up to 60 s past is taken as now; one further "
    "past is a 422. Postroom's addition to Rebilly's contract."
)

# Request limits (README "Limits"): a transactional message is not a mailing list.
MAX_RECIPIENTS = 50  # per field: to, cc, bcc
MAX_METADATA_ENTRIES = 50
MAX_METADATA_KEY = 100
MAX_METADATA_VALUE = 2000
MAX_ATTACHMENTS = 20
MAX_REPLY_TO = 10
MAX_HEADERS = 20
MAX_HEADER_VALUE = 900  # a header line is at most 998 octets (RFC 5322 2.1.1) with its name


def _header_name(name: str) -> str:
    problem = refusal(name)
    if problem is not None:
        raise PydanticCustomError("header_name", problem)
    return name


HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[TextLine, StringConstraints(max_length=MAX_HEADER_VALUE)]

MetadataKey = Annotated[TextLine, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY)]
MetadataValue = Annotated[WireStr, StringConstraints(max_length=MAX_METADATA_VALUE)]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    resource_type: WireStr = Field(
        alias="resourceType",
        min_length=1,
        max_length=50,
        description="`file` (resourceId: a file's id) or `attachment` (resourceId: an "
        "attachment's id, /attachments; its file is the one sent, as the link named it when "
        "the message entered `outbox`).",
    )
    resource_id: WireStr = Field(alias="resourceId", min_length=1, max_length=50)


class EmailMessageCreate(BaseModel):
    """A new message. Read-only fields a client sends (id, times, response*) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    status: Literal["draft", "outbox"] = "draft"
    from_: EmailAddress = Field(alias="from")
    to: list[EmailAddress] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    cc: list[EmailAddress] | None = Field(None, max_length=MAX_RECIPIENTS)
    bcc: list[EmailAddress] | None = Field(None, max_length=MAX_RECIPIENTS)
    subject: Annotated[TextLine, StringConstraints(max_length=998)]
    text: WireStr
    html: WireStr
    metadata: dict[MetadataKey, MetadataValue] | None = Field(None, max_length=MAX_METADATA_ENTRIES)
    attachments: list[Attachment] | None = Field(None, max_length=MAX_ATTACHMENTS)
    credential_hash: WireStr | None = Field(None, alias="credentialHash", max_length=50)
    scheduled_time: ScheduledTime | None = Field(
        None, alias="scheduledTime", description=SCHEDULED_TIME_DOC
    )
    reply_to: list[EmailAddress] | None = Field(
        None,
        alias="replyTo",
        max_length=MAX_REPLY_TO,
        description="Where replies go (the Reply-To header), if not to `from`. Postroom's "
        "addition to Rebilly's contract.",
    )
    headers: dict[HeaderName, HeaderValue] | None = Field(
        None,
        max_length=MAX_HEADERS,
        description="Extra headers, name to value (e.g. `X-Campaign`, `References`). Names that "
        "change the message's structure, routing or sender are refused (From, To, Cc, Bcc, "
        "Reply-To, Sender, Subject, Date, Message-ID, MIME-Version, Content-*, Return-Path, "
        "Received, DKIM-Signature, ARC-*, Resent-*, List-Unsubscribe*, X-Postroom-*). Postroom's "
        "addition to Rebilly's contract.",
    )


class EmailMessagePatch(BaseModel):
    """`status: outbox` sends a draft (Rebilly's contract); postroom adds `status: draft`, which
    takes a message waiting in `outbox` back, and `scheduledTime`, which sets when it goes."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    status: Literal["outbox", "draft"] | None = Field(
        None,
        description="`outbox` sends a draft. `draft` cancels a message waiting in `outbox` that "
        "no worker is sending (postroom's addition). Required unless scheduledTime is given.",
    )
    scheduled_time: ScheduledTime | None = Field(
        None,
        alias="scheduledTime",
        description=SCHEDULED_TIME_DOC + " Given alone, it reschedules a message waiting in "
        "`outbox` (or sets a draft's); with `status: outbox` it schedules the draft being sent, "
        "which otherwise keeps the time it was given.",
    )

    @property
    def schedules(self) -> bool:
        """Whether scheduledTime was given (null included: send at once)."""
        return "scheduled_time" in self.model_fields_set


class MessageLink(BaseModel):
    """Rebilly's `self`, first; postroom adds `resent-from` (the message this one is a resend
    of) and one `resends` per resend of this one, oldest first."""

    rel: Literal["self", "resent-from", "resends"] = "self"
    href: str


class EmailMessageResend(BaseModel):
    """What a resend changes of the message it copies; a field left out keeps the copied value
    (`scheduledTime`: at once)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    status: Literal["draft", "outbox"] = Field(
        "outbox", description="`outbox` (the default) sends the copy; `draft` keeps it to edit."
    )
    to: list[EmailAddress] | None = Field(None, min_length=1, max_length=MAX_RECIPIENTS)
    cc: list[EmailAddress] | None = Field(None, max_length=MAX_RECIPIENTS)
    bcc: list[EmailAddress] | None = Field(None, max_length=MAX_RECIPIENTS)
    credential_hash: WireStr | None = Field(
        None,
        alias="credentialHash",
        max_length=50,
        description="null: sent as a message naming no credential is (the default email "
        "delivery setting, or the server-wide transport).",
    )
    scheduled_time: ScheduledTime | None = Field(
        None, alias="scheduledTime", description=SCHEDULED_TIME_DOC
    )

    @field_validator("to", mode="before")
    @classmethod
    def _to_not_null(cls, value: Any) -> Any:
        # Only a value given is validated: left out, `to` is copied; null would leave none.
        if value is None:
            raise PydanticCustomError(
                "to_required", "a message needs a recipient; leave `to` out to keep the copied one"
            )
        return value


class EmailMessageRead(BaseModel):
    """Every property is always present: null (or [] for lists) when it has no value."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    status: MessageStatus
    metadata: dict[str, str] | None
    credential_hash: str | None = Field(alias="credentialHash")
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    text: str
    html: str
    attachments: list[Attachment]
    response_code: int | None = Field(alias="responseCode")
    response_body: str | None = Field(alias="responseBody")
    initiated_time: WireTime | None = Field(alias="initiatedTime")
    sent_time: WireTime | None = Field(alias="sentTime")
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    scheduled_time: WireTime | None = Field(
        None,
        alias="scheduledTime",
        description="When the message is to be sent, if not at once (postroom's addition).",
    )
    reply_to: list[str] = Field(
        default_factory=list, alias="replyTo", description="postroom's addition"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers (postroom's addition)."
    )
    links: list[MessageLink] = Field(alias="_links")

    @classmethod
    def of(
        cls, message: EmailMessage, href: str, resends: Sequence[str] = ()
    ) -> "EmailMessageRead":
        """`href`: the message's own URL; its resends' links (`resends`: their ids) and the
        link to the one it is a resend of are its siblings."""
        collection = href.rsplit("/", 1)[0]
        links = [MessageLink(href=href)]
        if message.resent_from_id is not None:
            links.append(
                MessageLink(rel="resent-from", href=f"{collection}/{message.resent_from_id}")
            )
        links += [MessageLink(rel="resends", href=f"{collection}/{r}") for r in resends]
        return cls(
            id=message.id,
            status=MessageStatus(message.status),
            metadata=message.metadata_,
            credentialHash=message.credential_hash,
            **{"from": message.from_address},
            to=message.to_addresses,
            cc=message.cc_addresses,
            bcc=message.bcc_addresses,
            subject=message.subject,
            text=message.text,
            html=message.html,
            attachments=[Attachment.model_validate(a) for a in message.attachments],
            responseCode=message.response_code,
            responseBody=message.response_body,
            initiatedTime=message.initiated_at,
            sentTime=message.sent_at,
            createdTime=message.created_at,
            updatedTime=message.updated_at,
            scheduledTime=message.scheduled_at,
            replyTo=message.reply_to or [],
            headers=message.headers or {},
            _links=links,
        )


_TIME = FieldKind.DATETIME
LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "status": ListField("status", choices=frozenset(MessageStatus)),
    "from": ListField("from_address"),
    "subject": ListField("subject", filterable=False),
    "credentialHash": ListField("credential_hash"),
    "responseCode": ListField("response_code", FieldKind.INTEGER),
    "createdTime": ListField("created_at", _TIME),
    "updatedTime": ListField("updated_at", _TIME),
    "initiatedTime": ListField("initiated_at", _TIME),
    "sentTime": ListField("sent_at", _TIME),
}


class EmailMessageBatchCreate(BaseModel):
    """Messages to create in one request (POST /email-message-batches). Each item is checked
    as POST /email-messages checks its body, by the route itself, so that one bad item is
    answered on its own instead of failing the whole batch."""

    model_config = ConfigDict(extra="ignore", strict=True)

    messages: list[Any] = Field(
        min_length=1,
        description="The messages, each as the body of POST /email-messages; at most "
        "POSTROOM_LIMITS__MAX_BATCH_MESSAGES (500 by default).",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EmailMessageCreate"}},
    )


class InvalidField(BaseModel):
    field: str
    message: str


class ItemProblem(BaseModel):
    """The RFC 7807 problem POST /email-messages would have answered for this item; its
    `invalidFields` name the fields inside the item, as that POST names them."""

    type: str
    title: str
    status: int
    detail: str
    invalid_fields: list[InvalidField] = Field(default_factory=list, alias="invalidFields")

    model_config = ConfigDict(populate_by_name=True)


class BatchItemCreated(BaseModel):
    status: Literal[201] = 201
    email_message: EmailMessageRead = Field(alias="emailMessage")

    model_config = ConfigDict(populate_by_name=True)


class BatchItemRefused(BaseModel):
    status: int = Field(description="The status a single POST would have answered: 422.")
    problem: ItemProblem


class EmailMessageBatchRead(BaseModel):
    results: list[BatchItemCreated | BatchItemRefused] = Field(
        description="One per message of the request, in its order."
    )
