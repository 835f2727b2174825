"""The set-up commands, run in-process through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.storage import tables as t
from tests.conftest import EXAMPLE_CONFIG
from tests.spine.test_config_loading import FIVE_MISTAKES

runner = CliRunner()


def all_command_paths(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [
        (*prefix, c.name or (c.callback.__name__ if c.callback else ""))
        for c in group.registered_commands
    ]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name
        paths += all_command_paths(sub.typer_instance, (*prefix, sub.name))
    return paths


def test_every_command_has_help() -> None:
    paths = all_command_paths(app)
    assert ("check-config",) in paths and ("db", "upgrade") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_check_config_example_exits_zero(cli_env: Path) -> None:
    result = runner.invoke(app, ["check-config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output


def test_bad_config_exits_two_and_writes_nothing(
    cli_env: Path, sessions: sessionmaker[Session], migrated_engine: Engine
) -> None:
    bad = cli_env / "bad.yaml"
    bad.write_text(FIVE_MISTAKES)
    for command in (["check-config", str(bad)], ["sync", str(bad)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        errors = [line for line in result.output.splitlines() if ": error: " in line]
        assert len(errors) == 5
        assert all(line.startswith(f"{bad}:") for line in errors)
        assert "nothing was changed" in result.output
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(t.AuditEvent)) == 0
        assert session.scalar(select(func.count()).select_from(t.School)) == 0


def test_init_sync_status_and_audit(cli_env: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    os.environ["MONITOR_CONFIG"] = str(cli_env / "monitor.yaml")
    assert (cli_env / "monitor.yaml").read_text() == EXAMPLE_CONFIG.read_text()
    assert runner.invoke(app, ["init"]).exit_code == 1  # never overwrites silently
    first = runner.invoke(app, ["sync"])
    assert first.exit_code == 0 and "change(s) applied" in first.output
    again = runner.invoke(app, ["sync"])
    assert again.exit_code == 0 and "Already up to date." in again.output
    status = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert status.exit_code == 0
    assert "oakfield-bluesky" in status.output and "Cerys Jones" in status.output
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "intact" in verified.output


def test_db_upgrade_reports_revision(cli_env: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and "revision" in result.output


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "check-config" in result.stdout
