"""The delivery_queue table (one narrow row per message in `outbox`), the delivery_attempts
table (one row per try, written before the network call), the send_pacing table (the next free
send slot of each rate-limited credential) and the workers table (each running delivery worker's
heartbeat)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class Outcome(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"  # refused for now; tried again later
    PERMANENT = "permanent"  # refused for good
    UNKNOWN = "unknown"  # cut off after the data went out: the server may have accepted it
    SUPPRESSED = "suppressed"  # every recipient is on the blocklist: nothing was sent


class QueuedMessage(Base):
    """A message in `outbox`, as the workers see it: enqueued in the transaction that puts the
    message in `outbox` (delivery/queue.py), deleted in the one that records its outcome.

    A claim stamps lease_token and leased_until and counts the attempt; none of those is indexed,
    so PostgreSQL updates the row in place (a HOT update: no new index entries). A claim that is
    never recorded (its worker died) becomes claimable again when leased_until passes. A retry
    moves due_at. The message row itself is written only when the outcome is known."""

    __tablename__ = "delivery_queue"
    __table_args__ = (
        Index("ix_delivery_queue_key_due", "delivery_key", "due_at"),
        Index("ix_delivery_queue_due", "due_at"),
        # Room in each page for the claims' new row versions (what makes them HOT updates).
        {"postgresql_with": {"fillfactor": 70}},
    )

    message_id: Mapped[str] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), primary_key=True
    )
    # Whom the message is claimed for (fair claims, delivery/repository.py): its organization
    # and the credential it goes out through (none: the server-wide transport), as one value.
    delivery_key: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime]
    attempt_count: Mapped[int] = mapped_column(default=0)
    lease_token: Mapped[str | None] = mapped_column(String(40))
    leased_until: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("email_messages.id", ondelete="CASCADE"))
    number: Mapped[int]
    transport: Mapped[str] = mapped_column(String(20))
    credential_id: Mapped[str | None] = mapped_column(String(40))
    worker: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime]
    # Null while in flight. A row still null when its message is claimed again belonged to a
    # worker that stopped mid-send: it becomes `unknown`.
    outcome: Mapped[str | None] = mapped_column(String(16))
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    response_code: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    # The service's own id for what it accepted (SendGrid X-Message-Id, Postmark MessageID,
    # Mailgun id, SES MessageId, an SMTP queue id): how its later events find the message.
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    # Recipients left out because they are on the blocklist (blocklists/service.py).
    suppressed: Mapped[list[str] | None]

    __table_args__ = (
        Index("ix_delivery_attempts_message", "message_id", "number"),
        Index("ix_delivery_attempts_provider_message", "provider_message_id"),
    )


class SendPacing(Base):
    """Shared by every worker: a credential's next free send slot. A claim reserves slots one
    interval (1 / max_send_rate) apart under this row's lock (delivery/pacing.py)."""

    __tablename__ = "send_pacing"

    credential_id: Mapped[str] = mapped_column(
        ForeignKey("service_credentials.id", ondelete="CASCADE"), primary_key=True
    )
    next_slot_at: Mapped[datetime]


class WorkerHeartbeat(Base):
    """A running worker, embedded or standalone: written when it starts, its last_seen_at moved
    every few seconds (worker.HEARTBEAT_SECONDS), removed when it stops cleanly. A worker that
    died leaves its row behind, last seen when it died."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # the worker's name
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    version: Mapped[str] = mapped_column(String(40))
