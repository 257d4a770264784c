"""resend: a message made from a sent or failed one names it (resent_from_id), and an index
finds the resends of a message

Revision ID: 7a8b9c0d1e2f
Revises: 9c1d2e3f4a5b
Create Date: 2026-12-05 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a8b9c0d1e2f"
down_revision: str | None = "9c1d2e3f4a5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.add_column(sa.Column("resent_from_id", sa.String(length=40), nullable=True))
        batch.create_foreign_key(
            op.f("fk_email_messages_resent_from_id_email_messages"),
            "email_messages",
            ["resent_from_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_email_messages_resent_from"), ["resent_from_id"])


def downgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_index(op.f("ix_email_messages_resent_from"))
        batch.drop_constraint(
            op.f("fk_email_messages_resent_from_id_email_messages"), type_="foreignkey"
        )
        batch.drop_column("resent_from_id")
