"""Quarantined items: what the database refused even alone, so the cursor moves on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.storage.types import BigIntPK, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_items",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("platform_id", sa.String(length=512), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.Column("case_id", BigIntPK, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quarantined_items_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_quarantined_items_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_items")),
    )
    with op.batch_alter_table("quarantined_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_items_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_quarantined_items_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_quarantined_items_platform_id", ["platform", "platform_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("quarantined_items", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantined_items_platform_id")
        batch_op.drop_index(batch_op.f("ix_quarantined_items_case_id"))
        batch_op.drop_index(batch_op.f("ix_quarantined_items_account_id"))
    op.drop_table("quarantined_items")
