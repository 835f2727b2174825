"""Anchor the audit chain: an HMAC per event and an HMAC'd head record (count, last hash).

Existing events keep their hash chain and are marked as older than the anchor
(``legacy_upto``); the first event recorded after the upgrade anchors the head with the
audit key, and its HMAC covers, through the chain, every event before it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.storage.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", _BIG, nullable=False),
        sa.Column("last_seq", _BIG, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("legacy_upto", _BIG, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("anchored_at", monitor.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    bind = op.get_bind()
    count, last_seq = bind.execute(
        sa.text("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM audit_events")
    ).one()
    last_hash = GENESIS_HASH
    if last_seq:
        last_hash = bind.execute(
            sa.text("SELECT hash FROM audit_events WHERE seq = :seq"), {"seq": last_seq}
        ).scalar_one()
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "count": count,
                "last_seq": last_seq,
                "last_hash": last_hash,
                "legacy_upto": last_seq,
                "key_id": None,
                "anchored_at": None,
                "mac": None,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("mac")
