"""files, their shared blobs, and the files each message attaches

Revision ID: 5b0c1f2e7a9d
Revises: 6171d4627fa5
Create Date: 2026-11-25 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import JSONType, UTCDateTime

revision: str = "5b0c1f2e7a9d"
down_revision: str | None = "6171d4627fa5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_blobs",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_blobs")),
        sa.UniqueConstraint("sha256", name=op.f("uq_file_blobs_sha256")),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("blob_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("extension", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("mime", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha1", sa.String(length=40), nullable=False),
        sa.Column("source_type", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_id"], ["file_blobs.id"], name=op.f("fk_files_blob_id_file_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_files_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_org_created", "files", ["organization_id", "created_at", "id"])
    op.create_index("ix_files_blob", "files", ["blob_id"])
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm was created with the email_messages table (the first revision).
        op.create_index(
            "ix_files_search_trgm",
            "files",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )

    op.create_table(
        "email_message_files",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_email_message_files_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_email_message_files_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "file_id", name=op.f("pk_email_message_files")),
    )
    op.create_index("ix_email_message_files_file", "email_message_files", ["file_id"])


def downgrade() -> None:
    op.drop_table("email_message_files")
    op.drop_table("files")
    op.drop_table("file_blobs")
