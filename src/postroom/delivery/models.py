"""The delivery_attempts table (one row per try, written before the network call), the
send_pacing table (the next free send slot of each rate-limited credential) and the workers
table (each running delivery worker's heartbeat)."""

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

    __table_args__ = (Index("ix_delivery_attempts_message", "message_id", "number"),)


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
