"""delivery queue: a message's delivery state (due time, lease, attempts, delivery key) in a
narrow table of its own, out of email_messages

Revision ID: d4e5f6a7b8c9
Revises: a1b2c3d4e5f6
Create Date: 2026-12-04 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "d4e5f6a7b8c9"
down_revision: str | None = "a1b2c3d4e5f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As postroom.messages.models.DELIVERY_KEY_SQL was before this revision.
KEY = "((organization_id || ' ') || coalesce(credential_hash, sender_credential_id, ''))"
OUTBOX = sa.text("status = 'outbox'")


def upgrade() -> None:
    op.create_table(
        "delivery_queue",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("delivery_key", sa.String(length=100), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=40), nullable=True),
        sa.Column("leased_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_delivery_queue_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_delivery_queue")),
        postgresql_with={"fillfactor": 70},
    )
    op.create_index("ix_delivery_queue_key_due", "delivery_queue", ["delivery_key", "due_at"])
    op.create_index("ix_delivery_queue_due", "delivery_queue", ["due_at"])
    # A claimed message's next_attempt_at was its lease's end.
    op.execute(
        f"""
        INSERT INTO delivery_queue
            (message_id, delivery_key, due_at, attempt_count, lease_token, leased_until)
        SELECT id, {KEY}, coalesce(next_attempt_at, initiated_at, created_at), attempt_count,
               lease_token, CASE WHEN lease_token IS NOT NULL THEN next_attempt_at END
        FROM email_messages WHERE status = 'outbox'
        """  # noqa: S608 - constant text
    )
    # Dropped first: SQLite's batch copy cannot reflect an expression index.
    op.drop_index("ix_email_messages_due_key", table_name="email_messages")
    op.drop_index("ix_email_messages_due", table_name="email_messages")
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempt_count")


def downgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_token", sa.String(length=40), nullable=True))
    op.execute(
        """
        UPDATE email_messages SET
            attempt_count = q.attempt_count,
            lease_token = q.lease_token,
            next_attempt_at = CASE WHEN q.lease_token IS NOT NULL THEN q.leased_until
                                   ELSE q.due_at END
        FROM delivery_queue AS q WHERE q.message_id = email_messages.id
        """
    )
    op.create_index(
        "ix_email_messages_due",
        "email_messages",
        ["next_attempt_at"],
        sqlite_where=OUTBOX,
        postgresql_where=OUTBOX,
    )
    op.create_index(
        "ix_email_messages_due_key",
        "email_messages",
        [sa.text(KEY), "next_attempt_at"],
        sqlite_where=OUTBOX,
        postgresql_where=OUTBOX,
    )
    op.drop_index("ix_delivery_queue_due", table_name="delivery_queue")
    op.drop_index("ix_delivery_queue_key_due", table_name="delivery_queue")
    op.drop_table("delivery_queue")
