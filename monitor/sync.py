"""Applying the configuration to the database: idempotent, audited, never deleting history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.config_models import Config
from monitor.storage import tables as t

ACTOR = "config-sync"


@dataclass(frozen=True)
class Change:
    """One change that sync made (and audited)."""

    action: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)


def _diff(row: Any, wanted: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Fields of ``row`` that differ from ``wanted``, as {field: [old, new]}."""
    changes: dict[str, list[Any]] = {}
    for name, value in wanted.items():
        old = getattr(row, name)
        if old != value:
            changes[name] = [_plain(old), _plain(value)]
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class _Sync:
    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.changes: list[Change] = []

    def note(self, action: str, subject: str, details: Mapping[str, Any] | None = None) -> None:
        clean = {k: _plain(v) for k, v in (details or {}).items()}
        self.changes.append(Change(action, subject, clean))
        audit.record(
            self.session, at=self.now, actor=ACTOR, action=action, subject=subject, details=clean
        )

    def upsert(self, model: type[Any], key: str, wanted: dict[str, Any], kind: str) -> Any:
        row = self.session.scalar(select(model).where(model.key == key))
        subject = f"{kind}:{key}"
        if row is None:
            row = model(key=key, created_at=self.now, **wanted)
            self.session.add(row)
            self.session.flush()
            self.note(f"{kind}.created", subject, wanted)
            return row
        if row.archived_at is not None:
            row.archived_at = None
            self.note(f"{kind}.restored", subject)
        changes = _diff(row, wanted)
        if changes:
            for name, value in wanted.items():
                setattr(row, name, value)
            self.note(f"{kind}.updated", subject, changes)
        return row

    def archive_missing(
        self, model: type[Any], keep: set[str], kind: str, extra: dict[str, Any]
    ) -> None:
        rows = self.session.scalars(select(model).where(model.archived_at.is_(None))).all()
        for row in rows:
            if row.key not in keep:
                row.archived_at = self.now
                for name, value in extra.items():
                    setattr(row, name, value)
                self.note(
                    f"{kind}.archived",
                    f"{kind}:{row.key}",
                    {"reason": "removed from the configuration"},
                )


def apply_config(session: Session, config: Config, *, now: datetime) -> list[Change]:
    """Make the database match ``config``; returns (and audits) every change made."""
    sync = _Sync(session, now)
    schools: dict[str, t.School] = {}
    for school in config.schools:
        schools[school.key] = sync.upsert(
            t.School,
            school.key,
            {
                "name": school.name,
                "timezone": config.timezone_of(school.key),
                "settings": {
                    "aliases": school.aliases,
                    "search_terms": school.search_terms,
                    "allow_terms": school.allow_terms,
                    "extra_terms": {str(k): v for k, v in school.extra_terms.items()},
                },
            },
            "school",
        )
    sync.archive_missing(t.School, set(schools), "school", {})

    staff: dict[str, t.Staff] = {}
    for member in config.staff:
        existing = session.scalar(select(t.Staff).where(t.Staff.key == member.id))
        wanted: dict[str, Any] = {
            "name": member.name,
            "email": member.email,
            "slack_user_id": member.slack_user_id,
            "roles": [str(r) for r in member.roles],
            "schools": list(member.schools),
            "active": member.active,
            "leaving_on": member.leaving_date,
            "successor_key": member.successor,
        }
        if existing is not None:
            if existing.left_at is not None:
                wanted["active"] = False  # a handover has run: the config cannot bring them back
            if member.leaving_date is None:
                # a leaving date set with `monitor staff leave` stays until changed there
                wanted["leaving_on"] = existing.leaving_on
                wanted["successor_key"] = member.successor or existing.successor_key
        staff[member.id] = sync.upsert(t.Staff, member.id, wanted, "staff")
    sync.archive_missing(t.Staff, set(staff), "staff", {"active": False})

    accounts: dict[str, t.Account] = {}
    for account in config.accounts:
        approved = staff.get(account.approved_by) if account.approved_by else None
        row = sync.upsert(
            t.Account,
            account.key,
            {
                "school_id": schools[account.school].id,
                "platform": str(account.platform),
                "handle": account.handle,
                "enabled": account.enabled,
                "approved_by_id": approved.id if approved else None,
                "linked_email": account.linked_email,
                "poll_interval_s": float(account.poll_interval),
                "gap_limit_s": float(account.gap_limit),
                "watch_mentions": account.watch_mentions,
                "options": dict(account.options),
                "credential_refs": {
                    name: ref.model_dump(exclude_none=True)
                    for name, ref in account.credentials.items()
                },
            },
            "account",
        )
        accounts[account.key] = row
        _sync_admins(sync, row, [staff[s] for s in account.admins if s in staff])
    sync.archive_missing(t.Account, set(accounts), "account", {"enabled": False})
    session.flush()
    return sync.changes


def _sync_admins(sync: _Sync, account: t.Account, wanted: list[t.Staff]) -> None:
    session = sync.session
    current = session.scalars(
        select(t.AccountAdmin).where(
            t.AccountAdmin.account_id == account.id, t.AccountAdmin.removed_at.is_(None)
        )
    ).all()
    current_ids = {row.staff_id for row in current}
    subject = f"account:{account.key}"
    for member in wanted:
        # someone who has left (handover done) is not re-added by a stale config entry
        if member.id not in current_ids and member.left_at is None:
            session.add(
                t.AccountAdmin(
                    account_id=account.id, staff_id=member.id, added_at=sync.now, source="config"
                )
            )
            sync.note("account.admin_added", subject, {"staff": member.key})
    wanted_ids = {m.id for m in wanted}
    for row in current:
        # successors appointed by a handover stay until someone edits the configuration
        if row.staff_id not in wanted_ids and row.source == "config":
            row.removed_at = sync.now
            sync.note("account.admin_removed", subject, {"staff": row.staff.key})
