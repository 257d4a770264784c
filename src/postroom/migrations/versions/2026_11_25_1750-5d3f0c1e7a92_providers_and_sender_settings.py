"""providers and sender settings: credential send rates, send pacing, email delivery settings,
and the sender pinned on a message

Revision ID: 5d3f0c1e7a92
Revises: 5b0c1f2e7a9d
Create Date: 2026-11-25 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "5d3f0c1e7a92"
down_revision: str | None = "5b0c1f2e7a9d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_send_rate", sa.Double(), nullable=True))

    op.create_table(
        "send_pacing",
        sa.Column("credential_id", sa.String(length=40), nullable=False),
        sa.Column("next_slot_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["service_credentials.id"],
            name=op.f("fk_send_pacing_credential_id_service_credentials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_send_pacing")),
    )

    op.create_table(
        "email_delivery_settings",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("from_address", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("credential_id", sa.String(length=40), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["service_credentials.id"],
            name=op.f("fk_email_delivery_settings_credential_id_service_credentials"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_email_delivery_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_delivery_settings")),
    )
    with op.batch_alter_table("email_delivery_settings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_delivery_settings_org_created",
            ["organization_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_email_delivery_settings_org_default",
            ["organization_id"],
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )
        batch_op.create_index(
            "uq_email_delivery_settings_org_from",
            ["organization_id", sa.literal_column("lower(from_address)")],
            unique=True,
        )

    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("sender_credential_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_column("sender_credential_id")
        batch_op.drop_column("sender_name")

    with op.batch_alter_table("email_delivery_settings", schema=None) as batch_op:
        batch_op.drop_index("uq_email_delivery_settings_org_from")
        batch_op.drop_index(
            "uq_email_delivery_settings_org_default",
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )
        batch_op.drop_index("ix_email_delivery_settings_org_created")
    op.drop_table("email_delivery_settings")
    op.drop_table("send_pacing")

    with op.batch_alter_table("service_credentials", schema=None) as batch_op:
        batch_op.drop_column("max_send_rate")
