"""Index item_id on cases, evidence, action_requests and removal_checks (retention deletes items).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:26:03.319971
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("action_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_requests_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("removal_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_removal_checks_item_id"), ["item_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("removal_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_removal_checks_item_id"))

    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_item_id"))

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_item_id"))

    with op.batch_alter_table("action_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_requests_item_id"))
