"""Scheduled posts: drafts, approvals bound to a content hash, publications per account.

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-04 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.storage.types import BigIntPK, JSONDoc, UTCDateTime

revision = "0011"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "post_drafts",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("drafted_by", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("content", JSONDoc, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("publish_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("findings", JSONDoc, nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_post_drafts_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_drafts")),
    )
    op.create_index(
        "ix_post_drafts_state_publish_at", "post_drafts", ["state", "publish_at"], unique=False
    )
    op.create_index(op.f("ix_post_drafts_school_id"), "post_drafts", ["school_id"], unique=False)
    op.create_table(
        "post_approvals",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("draft_id", BigIntPK, nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=24), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("overrides", JSONDoc, nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["post_drafts.id"], name=op.f("fk_post_approvals_draft_id_post_drafts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_approvals")),
    )
    op.create_index(
        op.f("ix_post_approvals_draft_id"), "post_approvals", ["draft_id"], unique=False
    )
    op.create_table(
        "publications",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("draft_id", BigIntPK, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("platform_ids", JSONDoc, nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("item_id", BigIntPK, nullable=True),
        sa.Column("published_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("watch_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_publications_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["post_drafts.id"], name=op.f("fk_publications_draft_id_post_drafts")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_publications_item_id_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
        sa.UniqueConstraint(
            "draft_id", "account_id", name=op.f("uq_publications_draft_id_account_id")
        ),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_publications_idempotency_key")),
    )
    op.create_index("ix_publications_state_due", "publications", ["state", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_publications_state_due", table_name="publications")
    op.drop_table("publications")
    op.drop_index(op.f("ix_post_approvals_draft_id"), table_name="post_approvals")
    op.drop_table("post_approvals")
    op.drop_index(op.f("ix_post_drafts_school_id"), table_name="post_drafts")
    op.drop_index("ix_post_drafts_state_publish_at", table_name="post_drafts")
    op.drop_table("post_drafts")
