"""The set-up commands, run in-process through the real CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from tests.conftest import EXAMPLE_CONFIG, REPO
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
    for command in (
        ["check-config", str(bad)],
        ["sync", str(bad)],
        ["run", "--config", str(bad)],
        ["worker", "--config", str(bad)],
    ):
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
    (cli_env / "monitor.yaml").write_text(EXAMPLE_CONFIG.read_text() + "# edited\n")
    again = runner.invoke(app, ["init"])  # the README's command run a second time
    assert again.exit_code == 0 and "left as it is" in again.output
    assert (cli_env / "monitor.yaml").read_text().endswith("# edited\n")  # never overwritten
    assert runner.invoke(app, ["init", "--force"]).exit_code == 0
    assert (cli_env / "monitor.yaml").read_text() == EXAMPLE_CONFIG.read_text()
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


@pytest.mark.slow
def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "check-config" in result.stdout


def readme_command_paths() -> set[tuple[str, ...]]:
    """Command paths named in the README's Commands table."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    paths = set()
    for usage in re.findall(r"`monitor ([^`]+)`", table):
        words = []
        for word in usage.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break  # an argument (PATH, ID) or an option (--once, [--json])
            words.append(word)
        paths.add(tuple(words))
    return paths


def test_the_readme_documents_every_command_and_only_real_ones() -> None:
    assert readme_command_paths() == set(all_command_paths(app))


def test_bad_environment_values_are_named_and_exit_two(cli_env: Path) -> None:
    env = {"LOG_LEVEL": "loud", "SMTP_PORT": "five-eight-seven", "LOG_FORMAT": "xml"}
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("environment: error")]
    assert [e.split(":")[2].strip() for e in errors] == ["LOG_LEVEL", "LOG_FORMAT", "SMTP_PORT"]


def test_an_unreadable_secret_file_is_named_not_a_traceback(cli_env: Path) -> None:
    missing = cli_env / "no-such-token"
    result = runner.invoke(app, ["status"], env={"SLACK_BOT_TOKEN_FILE": str(missing)})
    assert result.exit_code == 2
    assert f"SLACK_BOT_TOKEN_FILE points at '{missing}'" in result.output
    assert "Traceback" not in result.output


def test_a_database_url_in_a_file_is_used_and_never_printed(
    cli_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_file = cli_env / "database_url"
    url_file.write_text(db_url + "\n")
    monkeypatch.delenv("DATABASE_URL")
    result = runner.invoke(app, ["db", "upgrade"], env={"DATABASE_URL_FILE": str(url_file)})
    assert result.exit_code == 0, result.output
    assert not (cli_env / "data" / "monitor.db").exists()  # not the default SQLite file
    bad = runner.invoke(app, ["status"], env={"DATABASE_URL": "not a url:secret-pw"})
    assert bad.exit_code == 2 and "DATABASE_URL" in bad.output and "secret-pw" not in bad.output


def test_a_bad_config_creates_no_database_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the default SQLite store: check-config and sync stop before the database is opened."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(FIVE_MISTAKES)
    for command in ("check-config", "sync"):
        assert runner.invoke(app, [command, str(bad)]).exit_code == 2
    assert not (tmp_path / "data").exists()


def test_status_shows_last_success_error_and_next_poll(
    cli_env: Path, sessions: sessionmaker[Session]
) -> None:
    assert runner.invoke(app, ["sync"]).exit_code == 0
    success = datetime(2026, 7, 1, 8, 25, tzinfo=UTC)
    with transaction(sessions) as session:
        accounts = {a.key: a for a in session.scalars(select(t.Account))}
        account_queries.mark_success(
            session, accounts["oakfield-bluesky"].id, success, timedelta(minutes=5)
        )
        account_queries.mark_failure(
            session,
            accounts["oakfield-mastodon"].id,
            success,
            kind="auth",
            message="login refused: check the token",
            retry_at=success + timedelta(hours=1),
            pause=True,
        )
    result = runner.invoke(app, ["status"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    bluesky, mastodon = rows["oakfield-bluesky"], rows["oakfield-mastodon (disabled)"]
    # times are shown in the school's zone (Europe/London: BST in July)
    assert "1 Jul 2026 09:25 BST" in bluesky and "1 Jul 2026 09:30 BST" in bluesky
    assert "login refused: check the token" in mastodon and "1 Jul 2026 10:25 BST" in mastodon
    assert "never polled" in rows["riverside-reddit (disabled)"]


def test_smtp_without_a_sender_is_refused_at_start(cli_env: Path) -> None:
    result = runner.invoke(app, ["status"], env={"SMTP_HOST": "smtp.example.org"})
    assert result.exit_code == 2
    assert "environment: error: SMTP_FROM must be set when SMTP_HOST is" in result.output
