"""Local web accounts: an argon2 password hash and an optional TOTP secret per member of staff.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.storage.types

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_key", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("created_at", monitor.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", monitor.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_logins")),
        sa.UniqueConstraint("staff_key", name=op.f("uq_local_logins_staff_key")),
    )


def downgrade() -> None:
    op.drop_table("local_logins")
