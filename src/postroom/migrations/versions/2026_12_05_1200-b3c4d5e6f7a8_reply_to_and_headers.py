"""Reply-To and extra headers: what a message asks for beyond Rebilly's fields

Revision ID: b3c4d5e6f7a8
Revises: 7a8b9c0d1e2f
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import JSONType

revision: str = "b3c4d5e6f7a8"
down_revision: str | None = "7a8b9c0d1e2f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("reply_to", JSONType, nullable=True))
    op.add_column("email_messages", sa.Column("headers", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("headers")
        batch.drop_column("reply_to")
