"""The append-only, hash-chained audit log (case events and configuration changes).

Each event's SHA-256 covers the one before it, and an HMAC of that hash with the audit key
(``audit_key.py``) is stored beside it, so an edited event cannot be re-hashed without the
key. The head record (count, last sequence number and hash, HMAC'd too) is written in the
same transaction as each event, so events deleted from the end show as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from monitor.audit_key import AuditKey, load_key
from monitor.clock import require_aware
from monitor.storage.tables import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
# PostgreSQL advisory lock id that serialises appends to the chain.
AUDIT_LOCK_KEY = 0x5C4A0D17
HEAD_ID = 1
HEAD_REBUILT = "audit.head_rebuilt"
KEY_ROTATED = "audit.key_rotated"
KEY_CHANGED = "audit.key_changed"

log = logging.getLogger(__name__)


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


def _head_message(head: AuditHead) -> str:
    return (
        f"audit-head:{head.count}:{head.last_seq}:{head.last_hash}:{head.legacy_upto}:{head.key_id}"
    )


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def _seal(head: AuditHead, key: AuditKey) -> None:
    head.key_id = key.id
    head.mac = key.mac(_head_message(head))


def _head_for_append(session: Session, key: AuditKey, at: datetime) -> AuditHead:
    """The head, anchored with ``key``; rebuilt (and the rebuild audited) if it was deleted."""
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        last = session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
        count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        head = AuditHead(
            id=HEAD_ID,
            count=count,
            last_seq=last.seq if last else 0,
            last_hash=last.hash if last else GENESIS_HASH,
            legacy_upto=0,
            anchored_at=at,
        )
        session.add(head)
        _seal(head, key)
        if last is not None:  # events without a head: someone deleted it
            log.error("the audit head record was missing with %d event(s) stored: rebuilt", count)
            _append(
                session,
                head,
                key,
                at=at,
                actor="system",
                action=HEAD_REBUILT,
                subject="audit",
                case_id=None,
                reason="the audit head record was missing",
                details={"events": count, "last_seq": head.last_seq},
            )
        return head
    if head.key_id is None:
        anchored = session.scalar(select(func.count()).where(AuditEvent.mac.is_not(None))) or 0
        if anchored:
            log.error("the audit head lost its anchor although events carry an HMAC")
        else:  # first event since the upgrade that introduced the anchor
            head.anchored_at = at
            head.legacy_upto = head.last_seq
        _seal(head, key)
    elif head.key_id != key.id:
        # Another key than the one the log was signed with (lost, replaced without
        # `audit rotate-key`): keep recording, signed with this key, and say so in the log.
        log.error(
            "the audit log is signed with key %s but this process has key %s (from %s): "
            "recording continues with this key; `monitor audit verify` reports the change",
            head.key_id,
            key.id,
            key.source,
        )
        old_id = head.key_id
        _seal(head, key)
        _append(
            session,
            head,
            key,
            at=at,
            actor="system",
            action=KEY_CHANGED,
            subject="audit",
            case_id=None,
            reason="the audit key changed without a rotation",
            details={"old_key_id": old_id, "new_key_id": key.id},
        )
    return head


def _append(
    session: Session,
    head: AuditHead,
    key: AuditKey,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    case_id: int | None,
    reason: str | None,
    details: dict[str, Any],
) -> AuditEvent:
    seq = head.last_seq + 1
    prev_hash = head.last_hash
    # JSON round trip: the stored document is exactly what the hash covers.
    clean = json.loads(json.dumps(details, sort_keys=True, default=str))
    digest = _digest(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        case_id=case_id,
        reason=reason,
        details=clean,
        prev_hash=prev_hash,
    )
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
        hash=digest,
        mac=key.mac(digest),
    )
    session.add(event)
    head.count += 1
    head.last_seq = seq
    head.last_hash = digest
    _seal(head, key)
    session.flush()
    return event


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
    key: AuditKey | None = None,
) -> AuditEvent:
    """Append one event to the chain, and move the head, in the caller's transaction."""
    key = key or load_key()
    at = require_aware(at)
    _lock(session)
    head = _head_for_append(session, key, at)
    return _append(
        session,
        head,
        key,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        case_id=case_id,
        reason=reason,
        details=details or {},
    )


@dataclass(frozen=True)
class ChainBreak:
    """Where the log stops being trustworthy, and how.

    ``kind``: ``altered`` (an event's content no longer matches its hash), ``missing``
    (events gone from the middle), ``recomputed`` (hashes consistent but the HMAC is not:
    edited and re-hashed without the key), ``truncated`` (events gone from the end),
    ``head`` (the head record deleted or altered), ``key`` (the wrong key).
    """

    seq: int
    problem: str
    kind: str = "altered"


@dataclass(frozen=True)
class Verification:
    """What ``verify_chain`` found, beyond the breaks."""

    count: int
    legacy_upto: int
    key_id: str | None
    unchecked: int = 0  # events signed with another key than the one verifying


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


def verify_chain(session: Session, key: AuditKey | None = None) -> tuple[int, list[ChainBreak]]:
    """Recompute every hash and HMAC and check the head; the events checked and any breaks."""
    result, breaks = verify(session, key)
    return result.count, breaks


def verify(session: Session, key: AuditKey | None = None) -> tuple[Verification, list[ChainBreak]]:
    """``verify_chain`` with what the head says (see ``Verification``)."""
    key = key or load_key(create=False)
    head = session.get(AuditHead, HEAD_ID)
    breaks: list[ChainBreak] = []
    anchored = head is not None and head.key_id is not None
    if head is not None and head.key_id is not None and head.key_id != key.id:
        breaks.append(
            ChainBreak(
                head.last_seq,
                f"the log is signed with key {head.key_id}, not this key ({key.id}, from "
                f"{key.source}): the wrong key, or it was changed without "
                "`monitor audit rotate-key`",
                "key",
            )
        )
    signer = _signers(session, head)
    legacy_upto = head.legacy_upto if head is not None and head.key_id is not None else 0
    unchecked = 0
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = signed = 0
    last: AuditEvent | None = None
    for event in _iter_events(session):
        count += 1
        signed += event.mac is not None
        last = event
        if event.seq != expected_seq:
            breaks.append(
                ChainBreak(
                    event.seq,
                    f"sequence jumps from {expected_seq - 1} (events missing)",
                    "missing",
                )
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
        elif anchored and event.seq > legacy_upto and signer(event.seq) != key.id:
            unchecked += 1  # signed with another key (see the "key" break)
        elif anchored and event.seq > legacy_upto and event.mac != key.mac(event.hash):
            breaks.append(
                ChainBreak(
                    event.seq,
                    "its hash is consistent but its HMAC is "
                    + ("missing" if event.mac is None else "wrong")
                    + " (edited and the chain recomputed without the key)",
                    "recomputed",
                )
            )
        if event.action == KEY_CHANGED:
            breaks.append(
                ChainBreak(
                    event.seq,
                    "the audit key changed here without `monitor audit rotate-key` (from "
                    f"{event.details.get('old_key_id')} to {event.details.get('new_key_id')}): "
                    "events signed with the other key can be checked only with it",
                    "key",
                )
            )
        if event.action == HEAD_REBUILT:
            breaks.append(
                ChainBreak(event.seq, "the head record had been deleted and was rebuilt", "head")
            )
        expected_prev = event.hash
        expected_seq = event.seq + 1
    check_head = anchored and head is not None and head.key_id == key.id
    breaks.extend(_head_breaks(head, key, count, last, check_macs=check_head, signed=signed))
    key_id = head.key_id if head else None
    return Verification(count, legacy_upto, key_id, unchecked), breaks


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _signers(session: Session, head: AuditHead | None) -> Callable[[int], str | None]:
    """Which key id signed the event with a given seq (rotations re-sign all before them)."""
    rows = session.execute(
        select(AuditEvent.seq, AuditEvent.action, AuditEvent.details)
        .where(AuditEvent.action.in_([KEY_ROTATED, KEY_CHANGED]))
        .order_by(AuditEvent.seq)
    ).all()
    rotations = [row for row in rows if row.action == KEY_ROTATED]
    after = rotations[-1].seq if rotations else 0
    changes = [row for row in rows if row.action == KEY_CHANGED and row.seq > after]
    start: str | None
    if rotations:
        start = _text(rotations[-1].details.get("new_key_id"))
    elif changes:
        start = _text(changes[0].details.get("old_key_id"))
    else:
        start = head.key_id if head is not None else None
    bounds = [(row.seq, _text(row.details.get("new_key_id"))) for row in changes]

    def signer(seq: int) -> str | None:
        current = start
        for since, key_id in bounds:
            if since > seq:
                break
            current = key_id
        return current

    return signer


def _head_breaks(
    head: AuditHead | None,
    key: AuditKey,
    count: int,
    last: AuditEvent | None,
    *,
    check_macs: bool,
    signed: int,
) -> list[ChainBreak]:
    last_seq = last.seq if last is not None else 0
    if head is None:
        if count == 0:
            return []  # nothing was ever recorded on this database
        return [ChainBreak(last_seq, "the head record is missing (deleted)", "head")]
    if head.key_id is None:
        if signed:
            return [ChainBreak(head.last_seq, "the head record has lost its anchor", "head")]
    elif check_macs and head.mac != key.mac(_head_message(head)):
        return [ChainBreak(head.last_seq, "the head record was altered (HMAC is wrong)", "head")]
    breaks = []
    if last_seq < head.last_seq or count < head.count:
        gone = max(head.last_seq - last_seq, head.count - count)
        breaks.append(
            ChainBreak(
                last_seq,
                f"the log ends at event {last_seq} but the head says {head.count} event(s) up "
                f"to event {head.last_seq}: {gone} event(s) deleted from the end",
                "truncated",
            )
        )
    elif last_seq > head.last_seq:
        breaks.append(
            ChainBreak(
                last_seq,
                f"events after {head.last_seq}, where the head says the log ends, were added "
                "outside the monitor",
                "head",
            )
        )
    elif last is not None and last.hash != head.last_hash:
        breaks.append(
            ChainBreak(last_seq, "the last event is not the one the head records", "recomputed")
        )
    return breaks


def rotate_key(session: Session, old: AuditKey, new: AuditKey, *, at: datetime, actor: str) -> int:
    """Re-anchor every HMAC'd event and the head with ``new``; audited. The events re-signed.

    The caller verifies the log with ``old`` first: rotating re-signs whatever is there.
    """
    at = require_aware(at)
    _lock(session)
    head = _head_for_append(session, old, at)
    signed = 0
    for event in _iter_events(session):
        if event.seq > head.legacy_upto:
            event.mac = new.mac(event.hash)
            signed += 1
    _seal(head, new)
    _append(
        session,
        head,
        new,
        at=at,
        actor=actor,
        action=KEY_ROTATED,
        subject="audit",
        case_id=None,
        reason="audit key rotated",
        details={"old_key_id": old.id, "new_key_id": new.id, "events_resigned": signed},
    )
    return signed
