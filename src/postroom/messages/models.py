"""The email_messages table (a message in `outbox` is also queued: delivery/models.py), and the
kept counts of each organization's messages by status."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class MessageStatus(StrEnum):
    DRAFT = "draft"
    OUTBOX = "outbox"
    SENT = "sent"
    FAILED = "failed"


class EmailMessage(Base):
    __tablename__ = "email_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    from_address: Mapped[str] = mapped_column(String(254))
    to_addresses: Mapped[list[str]]
    cc_addresses: Mapped[list[str]]
    bcc_addresses: Mapped[list[str]]
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, str] | None] = mapped_column("metadata")
    attachments: Mapped[list[dict[str, str]]]
    credential_hash: Mapped[str | None] = mapped_column(String(50))
    # With no credential_hash, the organization's default email delivery setting as it was when
    # the message entered outbox (senders/service.py): its name and credential, pinned.
    sender_name: Mapped[str | None] = mapped_column(String(255))
    sender_credential_id: Mapped[str | None] = mapped_column(String(40))
    response_code: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    initiated_at: Mapped[datetime | None]
    # When the message is to be sent, if not at once (scheduledTime): its queue row is due then.
    scheduled_at: Mapped[datetime | None]
    # postroom's additions: Reply-To addresses and extra headers (messages/headers.py); null: none.
    reply_to: Mapped[list[str] | None]
    headers: Mapped[dict[str, str] | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The message this one is a resend of (messages/resend.py); null once that one is deleted.
    resent_from_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("email_messages.id", ondelete="SET NULL")
    )
    # Lower-cased subject, sender and recipients: what `q` searches (trigram index on PostgreSQL).
    search_text: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_email_messages_org_created", "organization_id", "created_at", "id"),
        Index(
            "ix_email_messages_org_status_created", "organization_id", "status", "created_at", "id"
        ),
        # A message's resends, for its `resends` links.
        Index("ix_email_messages_resent_from", "resent_from_id"),
        Index(
            "ix_email_messages_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class MessageFile(Base):
    """Which files a message attaches: what makes a file undeletable while the message is in
    `outbox` (the message's own `attachments` list stays the record of what was asked for)."""

    __tablename__ = "email_message_files"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_email_message_files_file", "file_id"),)


class MessageCount(Base):
    """How many messages an organization has in a status, kept in the same transaction as every
    change to email_messages (repository.change_counts), so that Pagination-Total is a sum of a
    few rows instead of a count(*) over the organization's messages. Each (organization, status)
    is spread over COUNT_SHARDS rows (repository.py says why); its count is their sum. A shard
    may go negative (a message counted into one shard leaves from another)."""

    __tablename__ = "email_message_counts"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger)
