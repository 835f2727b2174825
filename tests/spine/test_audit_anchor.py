"""Issue 13: the audit log shows tampering at its end too (HMAC key and head record)."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import audit
from monitor.audit_key import AuditKey, load_key
from monitor.cli import app
from monitor.storage import tables as t
from monitor.storage.db import make_engine, session_factory, transaction
from monitor.storage.migrate import upgrade
from tests.conftest import reset_postgres_schema

OTHER_KEY = AuditKey(secret=b"another-key-" + b"1" * 32, source="test")


def _record(sessions: sessionmaker[Session], now: datetime, n: int) -> None:
    with transaction(sessions) as session:
        for i in range(n):
            audit.record(
                session,
                at=now + timedelta(seconds=i),
                actor="tester",
                action="case.note",
                subject="case:1",
                details={"n": i},
            )


def _kinds(sessions: sessionmaker[Session], key: AuditKey | None = None) -> set[str]:
    with sessions() as session:
        return {b.kind for b in audit.verify_chain(session, key)[1]}


def _recompute_from(session: Session, seq: int) -> None:
    """What someone with database access but no key can do: re-hash the chain onwards."""
    events = session.scalars(select(t.AuditEvent).order_by(t.AuditEvent.seq)).all()
    prev = audit.GENESIS_HASH
    for event in events:
        if event.seq >= seq:
            event.prev_hash = prev
            event.hash = audit._digest(
                seq=event.seq,
                at=event.at,
                actor=event.actor,
                action=event.action,
                subject=event.subject,
                case_id=event.case_id,
                reason=event.reason,
                details=event.details,
                prev_hash=prev,
            )
        prev = event.hash
    head = session.get(t.AuditHead, 1)
    if head is not None:
        head.last_hash = prev


@pytest.mark.parametrize("deleted", [1, 10, 25])
def test_events_deleted_from_the_end_are_reported_as_truncation(
    sessions: sessionmaker[Session], now: datetime, deleted: int
) -> None:
    _record(sessions, now, 25)
    assert _kinds(sessions) == set()
    with transaction(sessions) as session:
        session.execute(delete(t.AuditEvent).where(t.AuditEvent.seq > 25 - deleted))
    with sessions() as session:
        count, breaks = audit.verify_chain(session)
    assert count == 25 - deleted
    assert [b.kind for b in breaks] == ["truncated"]
    assert f"{deleted} event(s) deleted from the end" in breaks[0].problem


def test_a_head_moved_back_with_the_rows_is_caught_by_its_hmac(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 5)
    with transaction(sessions) as session:
        last = session.scalars(select(t.AuditEvent).where(t.AuditEvent.seq == 3)).one()
        session.execute(delete(t.AuditEvent).where(t.AuditEvent.seq > 3))
        session.execute(update(t.AuditHead).values(count=3, last_seq=3, last_hash=last.hash))
    assert _kinds(sessions) == {"head"}


def test_an_edited_and_recomputed_chain_is_reported(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 6)
    with transaction(sessions) as session:
        session.execute(
            update(t.AuditEvent).where(t.AuditEvent.seq == 3).values(actor="someone else")
        )
        _recompute_from(session, 3)
    with sessions() as session:
        _, breaks = audit.verify_chain(session)
    assert {b.kind for b in breaks} >= {"recomputed"}
    assert min(b.seq for b in breaks if b.kind == "recomputed") == 3


def test_a_deleted_head_is_reported_and_a_rebuilt_one_stays_visible(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 3)
    with transaction(sessions) as session:
        session.execute(delete(t.AuditHead))
    assert _kinds(sessions) == {"head"}
    _record(sessions, now, 1)  # the monitor rebuilds the head and audits that it had to
    with sessions() as session:
        count, breaks = audit.verify_chain(session)
    assert count == 5
    assert [(b.kind, b.seq) for b in breaks] == [("head", 4)]


def test_a_changed_key_keeps_recording_and_is_reported(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 2)
    assert _kinds(sessions, OTHER_KEY) == {"key"}  # verifying with the wrong key
    with transaction(sessions) as session:  # a process whose key was replaced by mistake
        audit.record(
            session, at=now, actor="x", action="case.note", subject="case:1", key=OTHER_KEY
        )
    with sessions() as session:
        result, breaks = audit.verify(session, OTHER_KEY)
        actions = session.scalars(select(t.AuditEvent.action).order_by(t.AuditEvent.seq)).all()
    assert actions[-2:] == [audit.KEY_CHANGED, "case.note"]
    assert [(b.kind, b.seq) for b in breaks] == [("key", 3)]
    assert result.unchecked == 2  # signed with the first key
    with sessions() as session:
        kinds = [b.kind for b in audit.verify_chain(session)[1]]
    assert kinds == ["key", "key"]  # the head is signed with another key, and the change


def test_rotation_re_signs_the_log_and_is_audited(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 4)
    old = load_key()
    with transaction(sessions) as session:
        assert audit.rotate_key(session, old, OTHER_KEY, at=now, actor="cli:it") == 4
    assert _kinds(sessions, OTHER_KEY) == set()
    assert _kinds(sessions, old) == {"key"}
    with sessions() as session:
        last = session.scalars(select(t.AuditEvent).order_by(t.AuditEvent.seq.desc())).first()
    assert last is not None and last.action == audit.KEY_ROTATED
    assert last.details["new_key_id"] == OTHER_KEY.id


def test_a_missing_key_is_generated_private_once(tmp_path: Path) -> None:
    environ = {"MONITOR_DATA_DIR": str(tmp_path / "data")}
    first = load_key(environ)
    path = tmp_path / "data" / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(environ).id == first.id
    assert first.secret.decode() not in repr(first)
    with pytest.raises(Exception, match="no audit key"):
        load_key({"MONITOR_DATA_DIR": str(tmp_path / "none")}, create=False)
    secret = tmp_path / "key"
    secret.write_text("short\n")
    with pytest.raises(Exception, match="shorter than 32"):
        load_key({"MONITOR_AUDIT_KEY_FILE": str(secret)})


def _legacy_event(session: Session, seq: int, prev: str, now: datetime) -> str:
    fields = {
        "seq": seq,
        "at": now,
        "actor": "old",
        "action": "case.note",
        "subject": "case:1",
        "case_id": None,
        "reason": None,
        "details": {"n": seq},
    }
    digest = audit._digest(**fields, prev_hash=prev)  # type: ignore[arg-type]
    session.execute(insert(t.AuditEvent).values(**fields, prev_hash=prev, hash=digest))
    return digest


def test_an_existing_chain_is_migrated_and_anchored(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, now: datetime
) -> None:
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('legacy') / 'legacy.db'}"
    else:
        url = db_url
    engine: Engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            reset_postgres_schema(engine)
        upgrade(engine, "0004")
        with engine.begin() as conn:
            session = Session(bind=conn)
            prev = audit.GENESIS_HASH
            for seq in range(1, 4):
                prev = _legacy_event(session, seq, prev, now)
            session.flush()
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            head = session.get(t.AuditHead, 1)
            assert head is not None and (head.count, head.legacy_upto, head.key_id) == (3, 3, None)
            assert audit.verify_chain(session) == (3, [])
        _record(sessions, now, 2)
        with sessions() as session:
            result, breaks = audit.verify(session)
            assert (result.count, result.legacy_upto, breaks) == (5, 3, [])
        with transaction(sessions) as session:  # edit a pre-anchor event and re-hash onwards
            session.execute(
                update(t.AuditEvent).where(t.AuditEvent.seq == 2).values(actor="forger")
            )
            _recompute_from(session, 2)
        assert "recomputed" in _kinds(sessions)
    finally:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_events"))
        engine.dispose()


def test_the_cli_names_truncation_and_recomputation(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    _record(sessions, now, 4)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "4 event(s) verified" in ok.output
    with transaction(sessions) as session:
        session.execute(delete(t.AuditEvent).where(t.AuditEvent.seq == 4))
    truncated = runner.invoke(app, ["audit", "verify"])
    assert truncated.exit_code == 1
    assert "TRUNCATED" in truncated.output and "RECOMPUTED" not in truncated.output
    with transaction(sessions) as session:
        session.execute(update(t.AuditEvent).where(t.AuditEvent.seq == 2).values(actor="x"))
        _recompute_from(session, 2)
        session.execute(update(t.AuditHead).values(count=3, last_seq=3))
    recomputed = runner.invoke(app, ["audit", "verify"])
    assert recomputed.exit_code == 1
    assert "RECOMPUTED" in recomputed.output


def test_the_cli_rotates_the_key(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record(sessions, now, 3)
    runner = CliRunner()
    refused = runner.invoke(app, ["audit", "rotate-key"])
    assert refused.exit_code == 2 and "--new-key-file" in refused.output
    new_key = cli_env / "new.key"
    new_key.write_text("n" * 40 + "\n")
    os.chmod(new_key, 0o600)
    rotated = runner.invoke(app, ["audit", "rotate-key", "--new-key-file", str(new_key)])
    assert rotated.exit_code == 0, rotated.output
    assert "n" * 40 not in rotated.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 1  # the old key: mismatch
    monkeypatch.delenv("MONITOR_AUDIT_KEY")
    monkeypatch.setenv("MONITOR_AUDIT_KEY_FILE", str(new_key))
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "4 event(s) verified" in verified.output


@pytest.mark.parametrize("command", ["worker", "run"])
def test_a_bad_key_stops_the_service_before_it_starts(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("MONITOR_AUDIT_KEY", "too-short")
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 2
    assert "shorter than 32 characters" in result.output
    assert "too-short" not in result.output
