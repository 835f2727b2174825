"""Config sync is idempotent, audited and never deletes history; the audit chain shows tampering."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit
from monitor.config import load_config
from monitor.config_models import Config
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG


def example() -> Config:
    return load_config(EXAMPLE_CONFIG, environ={}).config


def active_admins(session: Session, account_key: str) -> set[str]:
    rows = session.scalars(
        select(t.Staff.key)
        .join(t.AccountAdmin, t.AccountAdmin.staff_id == t.Staff.id)
        .join(t.Account, t.Account.id == t.AccountAdmin.account_id)
        .where(t.Account.key == account_key, t.AccountAdmin.removed_at.is_(None))
    )
    return set(rows)


def count(session: Session, model: type[t.Base]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_sync_creates_everything_once_and_is_idempotent(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    cfg = example()
    with transaction(sessions) as session:
        first = apply_config(session, cfg, now=now)
    with transaction(sessions) as session:
        second = apply_config(session, cfg, now=now + timedelta(hours=1))
        events = count(session, t.AuditEvent)
    assert len(first) == events > 0
    assert second == []
    with sessions() as session:
        assert count(session, t.School) == len(cfg.schools)
        assert count(session, t.Staff) == len(cfg.staff)
        assert count(session, t.Account) == len(cfg.accounts)
        assert active_admins(session, "oakfield-bluesky") == {"cjones", "dmurphy"}


def test_changes_are_audited_and_history_is_kept(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    cfg = example()
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    accounts = [a for a in cfg.accounts if a.key != "riverside-reddit"]
    bluesky = accounts[0].model_copy(update={"admins": ["dmurphy", "fali"], "poll_interval": 60.0})
    changed = cfg.model_copy(update={"accounts": [bluesky, *accounts[1:]]})
    later = now + timedelta(days=1)
    with transaction(sessions) as session:
        changes = apply_config(session, changed, now=later)
    actions = sorted((c.action, c.subject) for c in changes)
    assert actions == [
        ("account.admin_added", "account:oakfield-bluesky"),
        ("account.admin_removed", "account:oakfield-bluesky"),
        ("account.archived", "account:riverside-reddit"),
        ("account.updated", "account:oakfield-bluesky"),
    ]
    updated = next(c for c in changes if c.action == "account.updated")
    assert updated.details == {"poll_interval_s": [300.0, 60.0]}
    with sessions() as session:
        archived = session.scalars(
            select(t.Account).where(t.Account.key == "riverside-reddit")
        ).one()
        assert archived.archived_at == later and archived.enabled is False
        assert active_admins(session, "oakfield-bluesky") == {"dmurphy", "fali"}
        closed = session.scalars(
            select(t.AccountAdmin).where(t.AccountAdmin.removed_at.is_not(None))
        ).all()
        assert [row.staff.key for row in closed] == ["cjones"]
        logged = session.scalars(select(t.AuditEvent.action).where(t.AuditEvent.at == later)).all()
        assert sorted(logged) == [a for a, _ in actions]


def test_audit_chain_detects_edits_and_deletions(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        for n in range(5):
            audit.record(
                session,
                at=now,
                actor="tester",
                action="case.note",
                subject="case:1",
                details={"n": n},
            )
    with sessions() as session:
        assert audit.verify_chain(session) == (5, [])
    with transaction(sessions) as session:
        session.execute(update(t.AuditEvent).where(t.AuditEvent.seq == 2).values(details={"n": 99}))
    with sessions() as session:
        _, breaks = audit.verify_chain(session)
        assert [(b.seq, "altered" in b.problem) for b in breaks] == [(2, True)]
    with transaction(sessions) as session:
        session.execute(update(t.AuditEvent).where(t.AuditEvent.seq == 2).values(details={"n": 1}))
        session.delete(session.scalars(select(t.AuditEvent).where(t.AuditEvent.seq == 4)).one())
    with sessions() as session:
        _, breaks = audit.verify_chain(session)
        assert {b.seq for b in breaks} == {5}
        assert any("missing" in b.problem for b in breaks)


def test_removed_staff_and_schools_are_archived_and_come_back_when_restored(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    cfg = example()
    with transaction(sessions) as session:
        first = apply_config(session, cfg, now=now)
    # Riverside, its account and its principal leave the configuration
    smaller = cfg.model_copy(
        update={
            "schools": [s for s in cfg.schools if s.key != "riverside"],
            "staff": [s for s in cfg.staff if s.id != "ewright"],
            "accounts": [a for a in cfg.accounts if a.school != "riverside"],
            "routing": cfg.routing.model_copy(update={"schools": {}}),
        }
    )
    later = now + timedelta(days=1)
    with transaction(sessions) as session:
        changes = apply_config(session, smaller, now=later)
    assert sorted((c.action, c.subject) for c in changes) == [
        ("account.archived", "account:riverside-reddit"),
        ("school.archived", "school:riverside"),
        ("staff.archived", "staff:ewright"),
    ]
    with sessions() as session:
        assert count(session, t.School) == len(cfg.schools)  # archived, never deleted
        member = session.scalars(select(t.Staff).where(t.Staff.key == "ewright")).one()
        assert member.archived_at == later and member.active is False
        school = session.scalars(select(t.School).where(t.School.key == "riverside")).one()
        assert school.archived_at == later
    with transaction(sessions) as session:
        back = apply_config(session, cfg, now=later + timedelta(days=1))
    restored = {(c.action, c.subject) for c in back}
    assert {
        ("school.restored", "school:riverside"),
        ("staff.restored", "staff:ewright"),
        ("account.restored", "account:riverside-reddit"),
    } <= restored
    with sessions() as session:
        member = session.scalars(select(t.Staff).where(t.Staff.key == "ewright")).one()
        assert member.archived_at is None and member.active is True
        # every change was audited, in one unbroken chain
        assert count(session, t.AuditEvent) == len(first) + len(changes) + len(back)
        assert audit.verify_chain(session)[1] == []
    with transaction(sessions) as session:
        assert apply_config(session, cfg, now=later + timedelta(days=2)) == []  # idempotent again
