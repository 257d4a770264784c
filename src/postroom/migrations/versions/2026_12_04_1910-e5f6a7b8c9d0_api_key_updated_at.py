"""api key updated_at: /api-keys shows when a key's description last changed (its creation time
for the keys made before)

Revision ID: e5f6a7b8c9d0
Revises: decb6f3da7a2
Create Date: 2026-12-04 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postroom.db.base import UTCDateTime

revision: str = "e5f6a7b8c9d0"
down_revision: str | None = "decb6f3da7a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("updated_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE api_keys SET updated_at = coalesce(revoked_at, created_at)")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("updated_at", existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("updated_at")
