"""One exported row per stored record, every column, named as the configuration names things."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.evidence import intact
from monitor.exports.format import times
from monitor.storage import tables as t


def keys_by_id(
    session: Session, model: type[t.Account] | type[t.School] | type[t.Staff]
) -> dict[int, str]:
    return {row.id: row.key for row in session.execute(select(model.id, model.key))}


@dataclass
class Names:
    """Id to key maps, so exports name accounts, schools and staff as the config does."""

    accounts: dict[int, str]
    schools: dict[int, str]
    staff: dict[int, str]

    @classmethod
    def load(cls, session: Session) -> Names:
        return cls(
            keys_by_id(session, t.Account),
            keys_by_id(session, t.School),
            keys_by_id(session, t.Staff),
        )


def item_row(item: t.Item, names: Names) -> dict[str, Any]:
    """One stored item, every column."""
    return {
        "item_id": item.id,
        "platform": item.platform,
        "platform_id": item.platform_id,
        "account": names.accounts.get(item.account_id, str(item.account_id)),
        "stream": item.stream,
        "kind": item.kind,
        "url": item.url,
        "author_handle": item.author_handle,
        "author_id": item.author_id,
        "author_name": item.author_name,
        "text": item.text,
        **times("posted_at", item.created_at),
        **times("first_seen_at", item.seen_at),
        "parent_id": item.parent_id,
        "root_id": item.root_id,
        "is_own": item.is_own,
        "visibility": item.visibility,
        **times("hidden_at", item.hidden_at),
        "flagged": item.flagged,
        "engagement": item.engagement,
        "raw": item.raw,
    }


def assessment_row(row: t.Assessment) -> dict[str, Any]:
    """One classifier and rules assessment."""
    return {
        "assessment_id": row.id,
        "item_id": row.item_id,
        "model": row.model,
        "severity": row.severity,
        "categories": row.categories,
        "scores": row.scores,
        "matches": row.matches,
        **times("assessed_at", row.assessed_at),
        "needs_rescore": row.needs_rescore,
    }


def case_row(case: t.Case, names: Names) -> dict[str, Any]:
    """One case, every column."""
    return {
        "case_id": case.id,
        "category": case.category,
        "severity": case.severity,
        "state": case.state,
        "restricted": case.restricted,
        "title": case.title,
        "school": names.schools.get(case.school_id) if case.school_id else None,
        "account": names.accounts.get(case.account_id) if case.account_id else None,
        "item_id": case.item_id,
        "assignee": names.staff.get(case.assignee_id) if case.assignee_id else None,
        **times("opened_at", case.opened_at),
        **times("due_at", case.due_at),
        **times("responded_at", case.responded_at),
        **times("closed_at", case.closed_at),
        "cannot_hide": case.cannot_hide,
        "police_step": case.police_step,
        "dedupe_key": case.dedupe_key,
        "details": case.details,
    }


def history_row(event: t.AuditEvent) -> dict[str, Any]:
    """One audit event of a case, with its chain hash."""
    return {
        "case_id": event.case_id,
        "seq": event.seq,
        **times("at", event.at),
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "details": event.details,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def evidence_row(record: t.Evidence) -> dict[str, Any]:
    """One evidence record: the main snapshot fields, its hash and whether it still matches."""
    snap = record.snapshot if isinstance(record.snapshot, dict) else {}
    return {
        "evidence_id": record.id,
        "case_id": record.case_id,
        "item_id": record.item_id,
        "platform": snap.get("platform"),
        "platform_id": snap.get("platform_id"),
        "account": snap.get("account"),
        "url": snap.get("url"),
        "author_handle": snap.get("author_handle"),
        "author_id": snap.get("author_id"),
        "author_name": snap.get("author_name"),
        "text": snap.get("text"),
        **times("posted_at", snap.get("posted_at")),
        **times("first_seen_at", snap.get("first_seen_at")),
        **times("captured_at", record.captured_at),
        "captured_by": record.captured_by,
        "categories": snap.get("categories"),
        "rules": snap.get("rules"),
        "scores": snap.get("scores"),
        "sha256": record.sha256,
        "intact": intact(record),
    }


def action_row(row: t.ActionRequest, names: Names) -> dict[str, Any]:
    """One requested action (hide, block, reply...) on an item."""
    return {
        "action_id": row.id,
        "case_id": row.case_id,
        "item_id": row.item_id,
        "account": names.accounts.get(row.account_id) if row.account_id else None,
        "kind": row.kind,
        "status": row.status,
        "requested_by": row.requested_by,
        **times("requested_at", row.requested_at),
        **times("done_at", row.done_at),
        "reason": row.reason,
        "params": row.params,
        "result": row.result,
    }
