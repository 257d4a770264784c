"""attachments: links from a file to another object (Rebilly's /attachments)

Revision ID: e7f1a2b3c4d5
Revises: e5f6a7b8c9d0
Create Date: 2026-12-04 19:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "e7f1a2b3c4d5"
down_revision: str | None = "e5f6a7b8c9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("related_type", sa.String(length=40), nullable=False),
        sa.Column("related_id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_attachments_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_attachments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_file", "attachments", ["file_id"])
    op.create_index(
        "ix_attachments_org_created", "attachments", ["organization_id", "created_at", "id"]
    )
    op.create_index(
        "ix_attachments_org_related",
        "attachments",
        ["organization_id", "related_type", "related_id"],
    )


def downgrade() -> None:
    op.drop_table("attachments")
