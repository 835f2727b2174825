"""The append-only, hash-chained audit log (case events and configuration changes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor.clock import require_aware
from monitor.storage.tables import AuditEvent

GENESIS_HASH = "0" * 64
# PostgreSQL advisory lock id that serialises appends to the chain.
AUDIT_LOCK_KEY = 0x5C4A0D17


def _digest(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    case_id: int | None,
    reason: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": require_aware(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "case_id": case_id,
        "reason": reason,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    case_id: int | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq = (last.seq + 1) if last else 1
    prev_hash = last.hash if last else GENESIS_HASH
    # JSON round trip: the stored document is exactly what the hash covers.
    clean = json.loads(json.dumps(details or {}, sort_keys=True, default=str))
    at = require_aware(at)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        case_id=case_id,
        reason=reason,
        details=clean,
        prev_hash=prev_hash,
        hash=_digest(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            case_id=case_id,
            reason=reason,
            details=clean,
            prev_hash=prev_hash,
        ),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain stops being consistent."""

    seq: int
    problem: str


def _iter_events(session: Session, batch: int = 1000) -> Iterator[AuditEvent]:
    after = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def verify_chain(session: Session) -> tuple[int, list[ChainBreak]]:
    """Recompute every hash; returns the number of events checked and any breaks."""
    breaks: list[ChainBreak] = []
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for event in _iter_events(session):
        count += 1
        if event.seq != expected_seq:
            breaks.append(
                ChainBreak(event.seq, f"sequence jumps from {expected_seq - 1} (events missing)")
            )
        if event.prev_hash != expected_prev:
            breaks.append(
                ChainBreak(
                    event.seq,
                    "previous-hash link does not match (event removed or altered before it)",
                )
            )
        recomputed = _digest(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            case_id=event.case_id,
            reason=event.reason,
            details=event.details,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            breaks.append(ChainBreak(event.seq, "content does not match its hash (event altered)"))
        expected_prev = event.hash
        expected_seq = event.seq + 1
    return count, breaks
