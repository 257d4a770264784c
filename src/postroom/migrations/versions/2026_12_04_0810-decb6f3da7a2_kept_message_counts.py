"""kept message counts: how many messages each organization has in each status, so that
Pagination-Total is a sum of a few rows; filled from the messages already stored

Revision ID: decb6f3da7a2
Revises: d4e5f6a7b8c9
Create Date: 2026-12-04 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "decb6f3da7a2"
down_revision: str | None = "d4e5f6a7b8c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_message_counts",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_email_message_counts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "status", "shard", name=op.f("pk_email_message_counts")
        ),
    )
    # Everything stored so far, into shard 0. Run by `postroom migrate` before the new code
    # serves (while old code still writes, counts could miss those writes: `postroom messages
    # recount` repairs them).
    op.execute(
        "INSERT INTO email_message_counts (organization_id, status, shard, count) "
        "SELECT organization_id, status, 0, count(*) FROM email_messages "
        "GROUP BY organization_id, status"
    )


def downgrade() -> None:
    op.drop_table("email_message_counts")
