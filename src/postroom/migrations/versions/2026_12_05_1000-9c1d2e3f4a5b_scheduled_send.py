"""scheduled send: the time a message in `outbox` waits for before its first attempt (its queue
row is due then)

Revision ID: 9c1d2e3f4a5b
Revises: f0e1d2c3b4a5
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "9c1d2e3f4a5b"
down_revision: str | None = "f0e1d2c3b4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("scheduled_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("scheduled_at")
