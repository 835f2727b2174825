"""Alerts remember when they were escalated; scheduled jobs record their health.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.storage.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalated_at", UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "job_health",
        sa.Column("job_id", sa.String(length=120), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("alerted_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_health")),
    )


def downgrade() -> None:
    op.drop_table("job_health")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("escalated_at")
