"""Index items by (platform, parent_id): the case page shows a reply's siblings in its thread.

Without it, finding the other replies to a post reads every item of the platform (0.4 s at
1,000,000 items on PostgreSQL; bench/web.py).

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-04 23:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_parent", ["platform", "parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_parent")
