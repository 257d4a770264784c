"""The wire shapes of /webhooks (components/schemas/GlobalWebhook.yaml) and /tracking/webhooks
(WebhookTracking.yaml)."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from postroom.api.wire import SelfLink, TextLine, WireStr, WireTime
from postroom.core.listing import FieldKind, ListField
from postroom.delivery.schemas import DeliveryAttemptRead
from postroom.events.schemas import MessageEventRead
from postroom.messages.schemas import EmailMessageRead
from postroom.webhooks.events import EventType
from postroom.webhooks.models import Webhook, WebhookStatus, WebhookTracking

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# Strict models take an enum member only; from JSON the value names it.
EventTypeName = Annotated[EventType, Field(strict=False)]
StatusName = Annotated[WebhookStatus, Field(strict=False)]
MAX_HEADERS = 20
HeaderName = Annotated[
    TextLine,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"),
]


# Set by postroom on every request (the signature's, the body's, the connection's).
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection"}
)


def _not_reserved(name: str) -> str:
    if name.lower() in RESERVED_HEADERS or name.lower().startswith("webhook-"):
        raise ValueError(f"{name} is set by postroom")
    return name


class Header(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    name: Annotated[HeaderName, AfterValidator(_not_reserved)]
    value: Annotated[TextLine, StringConstraints(max_length=2000)]
    status: Literal["active", "inactive"] = "active"


class WebhookWrite(BaseModel):
    """A webhook as PUT (and POST) give it whole. Read-only fields sent are ignored; `body`
    (Rebilly's templates) is not supported and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    events_filter: list[EventTypeName] = Field(
        default_factory=list, alias="eventsFilter", max_length=len(EventType)
    )
    status: StatusName = WebhookStatus.ACTIVE
    method: Method
    url: Annotated[WireStr, StringConstraints(min_length=1, max_length=2000)]
    headers: list[Header] = Field(default_factory=list, max_length=MAX_HEADERS)
    credential_hash: WireStr | None = Field(None, alias="credentialHash", max_length=50)
    filter: Annotated[WireStr, StringConstraints(max_length=2000)] | None = None

    def fields(self, only: set[str] | None = None) -> dict[str, Any]:
        """Model column -> value, for the wire fields given (all when `only` is None)."""
        names = {
            "events_filter": ("events_filter", [str(t) for t in self.events_filter]),
            "status": ("status", str(self.status)),
            "method": ("method", self.method),
            "url": ("url", self.url),
            # Only active headers are sent, so only they are kept.
            "headers": ("headers", {h.name: h.value for h in self.headers if h.status == "active"}),
            "credential_hash": ("credential_id", self.credential_hash),
            "filter": ("filter", self.filter or None),
        }
        return {
            column: value for name, (column, value) in names.items() if only is None or name in only
        }


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class WebhookPatch(WebhookWrite):
    """Only the fields given change."""

    method: Method = "POST"
    # Never used (a field left out is not applied), and not documented: "" is no valid URL.
    url: Annotated[WireStr, StringConstraints(min_length=1, max_length=2000)] = Field(
        "", json_schema_extra=_no_default
    )


class WebhookRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    events_filter: list[str] = Field(alias="eventsFilter")
    status: WebhookStatus
    inactive_reason: str | None = Field(
        alias="inactiveReason", description="postroom's own: why it is inactive"
    )
    method: str
    url: str
    headers: list[Header]
    credential_hash: str | None = Field(alias="credentialHash")
    filter: str | None
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(cls, webhook: Webhook, href: str) -> "WebhookRead":
        return cls(
            id=webhook.id,
            events_filter=webhook.events_filter,
            status=WebhookStatus(webhook.status),
            inactive_reason=webhook.inactive_reason,
            method=webhook.method,
            url=webhook.url,
            headers=[Header(name=k, value=v) for k, v in webhook.headers.items()],
            credential_hash=webhook.credential_id,
            filter=webhook.filter,
            created_time=webhook.created_time,
            updated_time=webhook.updated_time,
            links=[SelfLink(href=href)],
        )


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="The signing secret (Standard Webhooks), shown in this answer only."
    )


class SecretRotated(WebhookCreated):
    previous_secret_until: WireTime | None = Field(
        alias="previousSecretUntil",
        description="Until then, requests carry a signature with the previous secret too.",
    )


class EventData(BaseModel):
    email_message: EmailMessageRead = Field(
        alias="emailMessage",
        description="The message as GET /email-messages/{id} returns it, after the change; its "
        "`_links` are relative to the server's root.",
    )
    attempt: DeliveryAttemptRead | None = Field(
        None,
        description="The attempt that caused the event, as /email-messages/{id}/attempts "
        "shows it; absent when the message failed before any attempt.",
    )
    event: MessageEventRead | None = Field(
        None,
        description="The provider event (delivered, deferred, bounced, complained), as "
        "/email-messages/{id}/events shows it; present on those four event types only.",
    )


class EventPayload(BaseModel):
    """The body of every webhook request, the same bytes on every retry. Signed per Standard
    Webhooks (webhook-id, webhook-timestamp, webhook-signature headers)."""

    id: str = Field(description="The event's id (evt_…).")
    type: EventType
    occurred_time: WireTime = Field(alias="occurredTime")
    data: EventData


class WebhookTrackingRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    status: int | None = Field(description="The HTTP status answered; null when none was.")
    duration: int = Field(description="Milliseconds.")
    initiated_time: WireTime = Field(alias="initiatedTime")
    url: str
    method: str
    request: str
    response: str
    request_headers: dict[str, str] = Field(alias="requestHeaders")
    response_headers: dict[str, str] = Field(alias="responseHeaders")
    entity_id: str = Field(alias="entityId")
    organization_id: str = Field(alias="organizationId")
    event_type: str = Field(alias="eventType")
    webhook_id: str = Field(alias="webhookId", description="postroom's own")
    error: str | None = Field(description="postroom's own: why no answer came, if none did")
    source: Literal["webhook"] = "webhook"
    attempt: int
    sent_time: WireTime = Field(alias="sentTime")
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[SelfLink] = Field(alias="_links")

    @classmethod
    def of(cls, row: WebhookTracking, href: str) -> "WebhookTrackingRead":
        return cls(
            id=row.id,
            status=row.status,
            duration=row.duration,
            initiated_time=row.initiated_time,
            url=row.url,
            method=row.method,
            request=row.request,
            response=row.response,
            request_headers=row.request_headers,
            response_headers=row.response_headers,
            entity_id=row.entity_id,
            organization_id=row.organization_id,
            event_type=row.event_type,
            webhook_id=row.webhook_id,
            error=row.error,
            attempt=row.attempt,
            sent_time=row.sent_time,
            created_time=row.created_time,
            updated_time=row.updated_time,
            links=[SelfLink(href=href)],
        )


_TIME = FieldKind.DATETIME
LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "status": ListField("status", choices=frozenset(WebhookStatus)),
    "method": ListField("method"),
    "url": ListField("url"),
    "credentialHash": ListField("credential_id"),
    "createdTime": ListField("created_time", _TIME),
    "updatedTime": ListField("updated_time", _TIME),
}

TRACKING_LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "webhookId": ListField("webhook_id"),
    "entityId": ListField("entity_id"),
    "eventType": ListField("event_type", choices=frozenset(EventType)),
    "status": ListField("status", FieldKind.INTEGER),
    "url": ListField("url"),
    "method": ListField("method"),
    "attempt": ListField("attempt", FieldKind.INTEGER),
    "duration": ListField("duration", FieldKind.INTEGER),
    "initiatedTime": ListField("initiated_time", _TIME),
    "sentTime": ListField("sent_time", _TIME),
    "createdTime": ListField("created_time", _TIME),
    "updatedTime": ListField("updated_time", _TIME),
}
