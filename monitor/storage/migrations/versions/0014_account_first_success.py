"""Accounts remember their first successful poll: no digest for weeks before monitoring began.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-05 01:35:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.storage.types import UTCDateTime

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_health", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_success_at", UTCDateTime(timezone=True), nullable=True)
        )
    # an account already polled: its first item seen, else its last success
    op.execute(
        "UPDATE account_health SET first_success_at = COALESCE("
        "(SELECT MIN(items.seen_at) FROM items WHERE items.account_id = account_health.account_id),"
        " last_success_at) WHERE last_success_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("account_health", schema=None) as batch_op:
        batch_op.drop_column("first_success_at")
