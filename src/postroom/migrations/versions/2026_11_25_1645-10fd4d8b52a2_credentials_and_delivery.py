"""service credentials and delivery

Revision ID: 10fd4d8b52a2
Revises: 33081f1c166c
Create Date: 2026-11-25 16:45:08.797759
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import JSONType, UTCDateTime

revision: str = "10fd4d8b52a2"
down_revision: str | None = "33081f1c166c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "settings",
            JSONType,
            nullable=False,
        ),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("deactivated_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_service_credentials_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_credentials")),
    )
    with op.batch_alter_table("service_credentials", schema=None) as batch_op:
        batch_op.create_index(
            "ix_service_credentials_org_type", ["organization_id", "type", "id"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=False),
        sa.Column("credential_id", sa.String(length=40), nullable=True),
        sa.Column("worker", sa.String(length=80), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_delivery_attempts_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_attempts_message", ["message_id", "number"], unique=False
        )

    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_token", sa.String(length=40), nullable=True))
        batch_op.create_index(
            "ix_email_messages_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status = 'outbox'"),
            postgresql_where=sa.text("status = 'outbox'"),
        )
    # Messages queued before delivery existed are due now.
    op.execute("UPDATE email_messages SET next_attempt_at = initiated_at WHERE status = 'outbox'")


def downgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_email_messages_due",
            sqlite_where=sa.text("status = 'outbox'"),
            postgresql_where=sa.text("status = 'outbox'"),
        )
        batch_op.drop_column("lease_token")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempt_count")

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_attempts_message")

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("service_credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_service_credentials_org_type")

    op.drop_table("service_credentials")
