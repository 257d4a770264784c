"""What happened to a message after its mail service accepted it, as that service (or a bounce
sent back over SMTP) reported it; and the signed-request tokens already seen, so that a captured
request cannot be played again."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class EventKind(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"  # through the hosted one-click link: blocklisted


class BounceType(StrEnum):
    HARD = "hard"  # the address does not exist or refuses for good: it goes on the blocklist
    SOFT = "soft"  # a full mailbox, a message too large: blocklisted after a few


class EventSource(StrEnum):
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    POSTMARK = "postmark"
    SES = "ses"
    SMTP = "smtp"  # a DSN or ARF report sent to `postroom bounces`
    UNSUBSCRIBE = "unsubscribe"  # the recipient's one-click POST to the hosted link


class MessageEvent(Base):
    __tablename__ = "email_message_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("email_messages.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(254))
    bounce_type: Mapped[str | None] = mapped_column(String(8))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    # The provider's id of the event and its recipient: an event the provider sends again
    # (providers retry) is recorded once. Null where the provider gives the event no id.
    dedupe_key: Mapped[str | None] = mapped_column(String(400))
    raw: Mapped[dict[str, Any]]
    occurred_time: Mapped[datetime]
    created_time: Mapped[datetime]

    __table_args__ = (
        Index("ix_email_message_events_message", "message_id", "occurred_time"),
        Index("ix_email_message_events_org_recipient", "organization_id", "recipient", "type"),
        Index("uq_email_message_events_dedupe", "organization_id", "dedupe_key", unique=True),
    )


class InboundReplay(Base):
    """A token (Mailgun's) of a signed inbound request already accepted for a credential."""

    __tablename__ = "inbound_replays"

    credential_id: Mapped[str] = mapped_column(
        ForeignKey("service_credentials.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=False)

    __table_args__ = (Index("ix_inbound_replays_seen", "seen_at"),)
