"""provider events and the blocklist: the provider's id and the left-out recipients on each
attempt, events reported about a message after it was sent, the suppression list, and the
tokens of signed inbound requests already seen (replays)

Revision ID: f0e1d2c3b4a5
Revises: 3e6d8b34ab95
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import JSONType, UTCDateTime

revision: str = "f0e1d2c3b4a5"
down_revision: str | None = "3e6d8b34ab95"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("provider_message_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("suppressed", JSONType, nullable=True))
    op.create_index(
        "ix_delivery_attempts_provider_message", "delivery_attempts", ["provider_message_id"]
    )

    op.create_table(
        "email_message_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("bounce_type", sa.String(length=8), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=400), nullable=True),
        sa.Column("raw", JSONType, nullable=False),
        sa.Column("occurred_time", UTCDateTime(), nullable=False),
        sa.Column("created_time", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_email_message_events_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_email_message_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_message_events")),
    )
    op.create_index(
        "ix_email_message_events_message", "email_message_events", ["message_id", "occurred_time"]
    )
    op.create_index(
        "ix_email_message_events_org_recipient",
        "email_message_events",
        ["organization_id", "recipient", "type"],
    )
    op.create_index(
        "uq_email_message_events_dedupe",
        "email_message_events",
        ["organization_id", "dedupe_key"],
        unique=True,
    )

    op.create_table(
        "blocklists",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("expiration_time", UTCDateTime(), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("entity_id", sa.String(length=50), nullable=True),
        sa.Column("created_time", UTCDateTime(), nullable=False),
        sa.Column("updated_time", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_blocklists_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklists")),
    )
    op.create_index(
        "uq_blocklists_org_type_value",
        "blocklists",
        ["organization_id", "type", "value"],
        unique=True,
    )
    op.create_index(
        "ix_blocklists_org_created", "blocklists", ["organization_id", "created_time", "id"]
    )

    op.create_table(
        "inbound_replays",
        sa.Column("credential_id", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["service_credentials.id"],
            name=op.f("fk_inbound_replays_credential_id_service_credentials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("credential_id", "token", name=op.f("pk_inbound_replays")),
    )
    op.create_index("ix_inbound_replays_seen", "inbound_replays", ["seen_at"])


def downgrade() -> None:
    op.drop_table("inbound_replays")
    op.drop_table("blocklists")
    op.drop_table("email_message_events")
    op.drop_index("ix_delivery_attempts_provider_message", table_name="delivery_attempts")
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_column("suppressed")
        batch.drop_column("provider_message_id")
