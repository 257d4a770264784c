"""The wire shape of a provider event (GET /email-messages/{id}/events, and the `event` of the
email-message-delivered/-deferred/-bounced/-complained webhooks)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from postroom.api.wire import WireTime
from postroom.events.models import MessageEvent


class MessageEventRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    type: Literal["delivered", "deferred", "bounced", "complained", "unsubscribed"]
    source: Literal["sendgrid", "mailgun", "postmark", "ses", "smtp", "unsubscribe"] = Field(
        description="who reported it: a provider's event webhook, a bounce or feedback "
        "report sent back over SMTP, or the recipient's one-click unsubscribe"
    )
    recipient: str | None = Field(description="the recipient it concerns, where one is named")
    bounce_type: Literal["hard", "soft"] | None = Field(
        alias="bounceType",
        description="bounced only: hard (for good; the address goes on the blocklist) or soft",
    )
    diagnostic: str | None = Field(
        description="the receiving server's words (the SMTP reply or DSN diagnostic), if given"
    )
    occurred_time: WireTime = Field(alias="occurredTime", description="when the provider saw it")
    created_time: WireTime = Field(alias="createdTime", description="when postroom recorded it")
    raw: dict[str, Any] = Field(description="the provider's payload for this event, as received")

    @classmethod
    def of(cls, event: MessageEvent) -> "MessageEventRead":
        return cls.model_validate(
            {
                "id": event.id,
                "type": event.type,
                "source": event.source,
                "recipient": event.recipient,
                "bounce_type": event.bounce_type,
                "diagnostic": event.diagnostic,
                "occurred_time": event.occurred_time,
                "created_time": event.created_time,
                "raw": event.raw,
            }
        )
