"""The email_delivery_settings table: an organization's sender addresses, each with a display
name and a credential; at most one is the default (a partial unique index says so)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class SenderStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


class EmailDeliverySetting(Base):
    __tablename__ = "email_delivery_settings"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    from_address: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_credentials.id", ondelete="SET NULL")
    )
    is_default: Mapped[bool]
    # sha256 of the token mailed to from_address; the token itself is never stored.
    verification_token_hash: Mapped[str | None] = mapped_column(String(64))
    verification_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_email_delivery_settings_org_created", "organization_id", "created_at", "id"),
        Index(
            "uq_email_delivery_settings_verification_token",
            "verification_token_hash",
            unique=True,
        ),
        Index(
            "uq_email_delivery_settings_org_default",
            "organization_id",
            unique=True,
            sqlite_where=sql("is_default"),
            postgresql_where=sql("is_default"),
        ),
    )


# "This email address must be unique within your account", whatever its case.
Index(
    "uq_email_delivery_settings_org_from",
    EmailDeliverySetting.organization_id,
    func.lower(EmailDeliverySetting.from_address),
    unique=True,
)
