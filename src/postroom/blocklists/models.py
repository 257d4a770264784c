"""The blocklists table (Rebilly's /blocklists, types `email` and `email-domain`): recipients
that are left out at send time until the entry expires."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class BlocklistType(StrEnum):
    EMAIL = "email"
    EMAIL_DOMAIN = "email-domain"


class BlocklistSource(StrEnum):
    AUTOMATED = "automated-blocklists"  # a hard bounce, a complaint, repeated soft bounces
    MANUAL = "manual-blocklists"  # through the API


class BlocklistEntry(Base):
    __tablename__ = "blocklists"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    # Lower-cased: an address or a domain (IDNA A-labels as email-validator normalizes them).
    value: Mapped[str] = mapped_column(String(254))
    # Null: never expires. An expired entry stays listed but blocks nothing.
    expiration_time: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(24))
    # The message whose bounce or complaint added it (automated entries).
    entity_id: Mapped[str | None] = mapped_column(String(50))
    created_time: Mapped[datetime]
    updated_time: Mapped[datetime]

    __table_args__ = (
        Index("uq_blocklists_org_type_value", "organization_id", "type", "value", unique=True),
        Index("ix_blocklists_org_created", "organization_id", "created_time", "id"),
    )
