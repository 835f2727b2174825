"""The record commands, run in-process through typer (export-subject, evidence, retention)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from monitor.commands import records
from monitor.constants import Category
from monitor.retention import AUDIT_ACTION
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.conftest import EXAMPLE_CONFIG
from tests.records.seed_records import add_case, add_item, capture, sync_example

runner = CliRunner()
# The commands read the real clock: these dates are past and future whatever it says.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(2100, 1, 1, tzinfo=UTC)


def make_app() -> typer.Typer:
    """A CLI holding only this module's commands (the lead wires it into monitor.cli)."""
    app = typer.Typer(no_args_is_help=True)

    @app.callback()
    def main() -> None:
        """Test entry point."""

    records.register(app)
    return app


app = make_app()


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> Path:
    """Run commands in a scratch folder against the test database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "path", [["export-subject"], ["evidence", "export"], ["retention", "purge"]]
)
def test_commands_have_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_retention_purge_dry_run_then_real(cli_env: Path, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        account = sync_example(session, LONG_AGO)
        old = add_item(session, account, seen_at=LONG_AGO).id
        new = add_item(session, account, seen_at=FAR_AHEAD).id
    dry = runner.invoke(app, ["retention", "purge", "--dry-run", "--config", str(EXAMPLE_CONFIG)])
    assert dry.exit_code == 0, dry.output
    assert "items            1" in dry.output and "would remove" in dry.output
    with sessions() as session:
        assert session.get(t.Item, old) is not None
    real = runner.invoke(app, ["retention", "purge", "--config", str(EXAMPLE_CONFIG)])
    assert real.exit_code == 0, real.output
    assert "items            1" in real.output and "assessments      1" in real.output
    with sessions() as session:
        assert session.get(t.Item, old) is None and session.get(t.Item, new) is not None
        purges = session.scalar(
            select(func.count())
            .select_from(t.AuditEvent)
            .where(t.AuditEvent.action == AUDIT_ACTION)
        )
        assert purges == 1  # the dry run recorded nothing


def test_retention_purge_refuses_a_bad_config(cli_env: Path) -> None:
    bad = cli_env / "bad.yaml"
    bad.write_text(EXAMPLE_CONFIG.read_text().replace("alerts_days: 365", "alerts_days: 0"))
    result = runner.invoke(app, ["retention", "purge", "--config", str(bad)])
    assert result.exit_code == 2 and "alerts_days" in result.output


AS_HEAD = ["--as", "aokafor", "--config", str(EXAMPLE_CONFIG)]  # Oakfield's principal


def test_export_commands_write_folders(cli_env: Path, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        account = sync_example(session, LONG_AGO)
        item = add_item(session, account, seen_at=LONG_AGO, handle="Troll.Example", flagged=True)
        case = add_case(session, opened_at=LONG_AGO, item=item)
        capture(session, item, case, LONG_AGO)
        case_id = case.id
    subject = runner.invoke(app, ["export-subject", "@troll.example", "--out", "sar", *AS_HEAD])
    assert subject.exit_code == 0, subject.output
    assert "items          1" in subject.output and "evidence       1" in subject.output
    [folder] = (cli_env / "sar").iterdir()
    assert json.loads((folder / "subject.json").read_text())["items"][0]["item_id"] == item.id
    evidence = runner.invoke(
        app, ["evidence", "export", str(case_id), "--out", "ev", "--zip", *AS_HEAD]
    )
    assert evidence.exit_code == 0, evidence.output
    assert "1 case(s), 1 evidence record(s)" in evidence.output
    assert [p.suffix for p in (cli_env / "ev").iterdir()] == [".zip"]
    missing = runner.invoke(app, ["evidence", "export", str(case_id), "999999", *AS_HEAD])
    assert missing.exit_code == 1 and "999999" in missing.output
    assert not (cli_env / "exports").exists()


def audited(sessions: sessionmaker[Session], action: str) -> list[t.AuditEvent]:
    """Audit events of ``action``, oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                select(t.AuditEvent).where(t.AuditEvent.action == action).order_by(t.AuditEvent.seq)
            )
        )


def test_exports_need_the_right_role_and_refusals_are_audited(
    cli_env: Path, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        account = sync_example(session, LONG_AGO)
        item = add_item(session, account, seen_at=LONG_AGO, handle="troll.example", flagged=True)
        case = add_case(
            session,
            opened_at=LONG_AGO,
            item=item,
            category=Category.SAFEGUARDING,
            school_id=account.school_id,
        )
        capture(session, item, case, LONG_AGO)
        case_id = case.id
    config = ["--config", str(EXAMPLE_CONFIG), "--out", "out"]

    def run(*args: str) -> Result:
        return runner.invoke(app, [*args, *config])

    # a safeguarding case's evidence: the principal is refused, the DSL is not
    head = run("evidence", "export", str(case_id), "--as", "aokafor")
    assert head.exit_code == 1, head.output
    assert "Refused" in head.output and "deputy_dsl, dsl" in head.output
    assert "nothing was exported" in head.output and not (cli_env / "out").exists()
    [refused] = audited(sessions, "case.evidence_export_refused")
    assert (refused.case_id, refused.actor) == (case_id, "aokafor")
    assert refused.details["os_user"].startswith("cli")
    dsl = run("evidence", "export", str(case_id), "--as", "bpatel")
    assert dsl.exit_code == 0, dsl.output
    [exported] = audited(sessions, "case.evidence_exported")
    assert exported.actor == "bpatel" and exported.details["os_user"].startswith("cli")
    # subject access: a moderator is refused, SLT is not
    moderator = run("export-subject", "@troll.example", "--as", "cjones")
    assert moderator.exit_code == 1 and "dsl, it_admin, principal, slt" in moderator.output
    [sar_refused] = audited(sessions, "records.subject_export_refused")
    assert sar_refused.actor == "cjones" and "troll" not in str(sar_refused.details)
    assert not [p for p in (cli_env / "out").iterdir() if p.name.startswith("subject-")]
    ok = run("export-subject", "@troll.example", "--as", "aokafor")
    assert ok.exit_code == 0, ok.output
    assert [e.actor for e in audited(sessions, "records.subject_exported")] == ["aokafor"]
    # --as is required, and must name an active member of staff (exit 2, still audited)
    for command in (["evidence", "export", str(case_id)], ["export-subject", "troll.example"]):
        assert run(*command).exit_code == 2
        unknown = run(*command, "--as", "nobody")
        assert unknown.exit_code == 2 and "no active member of staff 'nobody'" in unknown.output
    assert [e.details["as"] for e in audited(sessions, "case.evidence_export_refused")] == [
        "aokafor",
        "nobody",
    ]
    assert audited(sessions, "records.subject_export_refused")[-1].details["as"] == "nobody"
