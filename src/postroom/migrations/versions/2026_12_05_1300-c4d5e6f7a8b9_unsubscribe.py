"""one-click unsubscribe: a message's own List-Unsubscribe URL, or postroom's hosted one

Revision ID: c4d5e6f7a8b9
Revises: b3c4d5e6f7a8
Create Date: 2026-12-05 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4d5e6f7a8b9"
down_revision: str | None = "b3c4d5e6f7a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("unsubscribe_url", sa.Text(), nullable=True))
    op.add_column("email_messages", sa.Column("hosted_unsubscribe", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("hosted_unsubscribe")
        batch.drop_column("unsubscribe_url")
