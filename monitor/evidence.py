"""Evidence records (R7): captured before any hide or removal, with a SHA-256 of the record."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.storage import tables as t


def canonical(snapshot: dict[str, Any]) -> bytes:
    """The exact bytes the hash covers (sorted keys, no spaces, UTF-8)."""
    return json.dumps(
        snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def snapshot_of(
    item: t.Item, assessment: t.Assessment | None, *, captured_at: datetime, account_key: str
) -> dict[str, Any]:
    """Everything R7 asks for: text, author, address, times, platform ids, scores, rules."""
    return {
        "platform": item.platform,
        "platform_id": item.platform_id,
        "account": account_key,
        "url": item.url,
        "author_handle": item.author_handle,
        "author_id": item.author_id,
        "author_name": item.author_name,
        "text": item.text,
        "posted_at": item.created_at.isoformat(),
        "first_seen_at": item.seen_at.isoformat(),
        "captured_at": captured_at.isoformat(),
        "parent_id": item.parent_id,
        "root_id": item.root_id,
        "engagement": item.engagement,
        "scores": assessment.scores if assessment else {},
        "categories": assessment.categories if assessment else [],
        "rules": [m.get("rule_id") for m in assessment.matches] if assessment else [],
        "raw": item.raw,
    }


def capture(
    session: Session,
    *,
    item: t.Item,
    case_id: int | None,
    account_key: str,
    captured_by: str,
    now: datetime,
) -> t.Evidence:
    """Store an evidence record of ``item`` as it is now."""
    assessment = session.query(t.Assessment).filter(t.Assessment.item_id == item.id).one_or_none()
    snapshot = snapshot_of(item, assessment, captured_at=now, account_key=account_key)
    # store exactly what was hashed (a JSON round trip normalises types)
    snapshot = json.loads(canonical(snapshot))
    record = t.Evidence(
        case_id=case_id,
        item_id=item.id,
        captured_at=now,
        captured_by=captured_by,
        snapshot=snapshot,
        sha256=hashlib.sha256(canonical(snapshot)).hexdigest(),
    )
    session.add(record)
    session.flush()
    return record


def intact(record: t.Evidence) -> bool:
    """True when the stored snapshot still matches its hash."""
    return hashlib.sha256(canonical(record.snapshot)).hexdigest() == record.sha256
