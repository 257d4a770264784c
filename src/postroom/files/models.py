"""The files table (what an organization uploaded) and file_blobs (the stored contents, one row
per distinct content, shared by every file that has it), and attachments (links from a file to
another object)."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.db.base import Base


class FileBlob(Base):
    __tablename__ = "file_blobs"

    # The blob's name in the blob store: its SHA-256 and the ULID of this row (blobstore.py).
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # No cascade: a blob row goes only when the last file naming it has gone (service.py).
    blob_id: Mapped[str] = mapped_column(ForeignKey("file_blobs.id"))
    name: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[str]]
    mime: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha1: Mapped[str] = mapped_column(String(40))
    source_type: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Lower-cased name, description and tags: what `q` searches (trigram index on PostgreSQL).
    search_text: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_files_org_created", "organization_id", "created_at", "id"),
        Index("ix_files_blob", "blob_id"),
        Index(
            "ix_files_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class FileAttachment(Base):
    """A file linked to another object (Rebilly's /attachments): the link, not the content."""

    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # A link goes with its file: a deleted file leaves nothing to link to.
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    related_type: Mapped[str] = mapped_column(String(40))
    related_id: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_attachments_org_created", "organization_id", "created_at", "id"),
        Index("ix_attachments_file", "file_id"),
        Index("ix_attachments_org_related", "organization_id", "related_type", "related_id"),
    )
