"""The webhooks tables: endpoints, the event outbox, one delivery per (event, webhook), and one
tracking row per HTTP attempt (the shared data contract of issue 13: the API half writes
webhooks, events and deliveries; the dispatcher claims deliveries and writes tracking)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    inactive_reason: Mapped[str | None] = mapped_column(Text)
    events_filter: Mapped[list[str]]
    filter: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10), default="POST")
    url: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]]
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_credentials.id", ondelete="SET NULL")
    )
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    created_time: Mapped[datetime]
    updated_time: Mapped[datetime]


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_time: Mapped[datetime]


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    attempt_count: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    lease_token: Mapped[str | None] = mapped_column(String(40))
    leased_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_time: Mapped[datetime]
    updated_time: Mapped[datetime]

    __table_args__ = (
        Index(
            "ix_webhook_deliveries_pending_due",
            "status",
            "due_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookTracking(Base):
    __tablename__ = "webhook_tracking"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int]
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10))
    request: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[dict[str, str]]
    status: Mapped[int | None]
    response: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, str]]
    error: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[int]
    initiated_time: Mapped[datetime]
    sent_time: Mapped[datetime]
    created_time: Mapped[datetime]
    updated_time: Mapped[datetime]
