"""The service_credentials table: how to reach a mail service, secrets encrypted."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DEACTIVATED = "deactivated"


class ServiceCredential(Base):
    __tablename__ = "service_credentials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    # Everything that may be shown (host, port, usernames); secrets live only in `secret`.
    settings: Mapped[dict[str, Any]]
    # Fernet token of a JSON object of the secret fields (core/crypto.py); never returned.
    secret: Mapped[str | None] = mapped_column(Text)
    # Messages per second at most, across every worker (delivery/pacing.py); null: no limit.
    max_send_rate: Mapped[float | None]
    deactivated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_service_credentials_org_type", "organization_id", "type", "id"),)
