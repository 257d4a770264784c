"""fair claims: the due messages of each (organization, credential) in order, for the claim's
loose index scan

Revision ID: c3d4e5f6a7b8
Revises: 5d3f0c1e7a92
Create Date: 2026-12-04 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d4e5f6a7b8"
down_revision: str | None = "5d3f0c1e7a92"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As postroom.messages.models.DELIVERY_KEY_SQL was when this revision was written.
KEY = "((organization_id || ' ') || coalesce(credential_hash, sender_credential_id, ''))"


def upgrade() -> None:
    op.create_index(
        "ix_email_messages_due_key",
        "email_messages",
        [sa.text(KEY), "next_attempt_at"],
        unique=False,
        sqlite_where=sa.text("status = 'outbox'"),
        postgresql_where=sa.text("status = 'outbox'"),
    )


def downgrade() -> None:
    op.drop_index("ix_email_messages_due_key", table_name="email_messages")
