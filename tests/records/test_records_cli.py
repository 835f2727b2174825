"""The record commands, run in-process through typer (export-subject, evidence, retention)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.commands import records
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


def test_export_commands_write_folders(cli_env: Path, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        account = sync_example(session, LONG_AGO)
        item = add_item(session, account, seen_at=LONG_AGO, handle="Troll.Example", flagged=True)
        case = add_case(session, opened_at=LONG_AGO, item=item)
        capture(session, item, case, LONG_AGO)
        case_id = case.id
    subject = runner.invoke(app, ["export-subject", "@troll.example", "--out", "sar"])
    assert subject.exit_code == 0, subject.output
    assert "items          1" in subject.output and "evidence       1" in subject.output
    [folder] = (cli_env / "sar").iterdir()
    assert json.loads((folder / "subject.json").read_text())["items"][0]["item_id"] == item.id
    evidence = runner.invoke(app, ["evidence", "export", str(case_id), "--out", "ev", "--zip"])
    assert evidence.exit_code == 0, evidence.output
    assert "1 case(s), 1 evidence record(s)" in evidence.output
    assert [p.suffix for p in (cli_env / "ev").iterdir()] == [".zip"]
    missing = runner.invoke(app, ["evidence", "export", str(case_id), "999999"])
    assert missing.exit_code == 1 and "999999" in missing.output
    assert not (cli_env / "exports").exists()
