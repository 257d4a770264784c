"""sender verification: a hashed token and its expiry on each email delivery setting, and the
system organization that mails the tokens

Revision ID: a1b2c3d4e5f6
Revises: b2c3d4e5f6a7
Create Date: 2026-12-04 02:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "a1b2c3d4e5f6"
down_revision: str | None = "b2c3d4e5f6a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As postroom.auth.service.SYSTEM_ORGANIZATION_ID: it owns the verification mail, which no API
# key reaches (the mail carries the token a tenant must not read).
SYSTEM_ORGANIZATION_ID = "org_postroom"


def upgrade() -> None:
    table = "email_delivery_settings"
    op.add_column(table, sa.Column("verification_token_hash", sa.String(64), nullable=True))
    op.add_column(table, sa.Column("verification_expires_at", UTCDateTime(), nullable=True))
    op.create_index(
        "uq_email_delivery_settings_verification_token",
        table,
        ["verification_token_hash"],
        unique=True,
    )
    organizations = sa.table(
        "organizations",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("created_at", UTCDateTime()),
    )
    op.bulk_insert(
        organizations,
        [
            {
                "id": SYSTEM_ORGANIZATION_ID,
                "name": "postroom",
                "created_at": datetime.now(UTC).replace(microsecond=0),
            }
        ],
    )


def downgrade() -> None:
    system = {"id": SYSTEM_ORGANIZATION_ID}
    op.execute(
        sa.text("DELETE FROM email_messages WHERE organization_id = :id").bindparams(**system)
    )
    op.execute(sa.text("DELETE FROM organizations WHERE id = :id").bindparams(**system))
    op.drop_index(
        "uq_email_delivery_settings_verification_token", table_name="email_delivery_settings"
    )
    # Not batch mode: SQLite (3.35+) drops a column in place, where a batch would rebuild the
    # table and lose its case-insensitive unique index, which SQLite cannot reflect.
    for column in ("verification_expires_at", "verification_token_hash"):
        op.execute(sa.text(f"ALTER TABLE email_delivery_settings DROP COLUMN {column}"))
