"""Every command that needs the database says in one line when it cannot open it (exit 2).

And a case id no database could hold is a usage error, not an overflow traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from tests.conftest import EXAMPLE_CONFIG
from tests.spine.test_cli_core import all_command_paths

runner = CliRunner()

# every command, with the arguments it needs to reach the database
DATABASE_COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("sync",): [],
    ("status",): [],
    ("poll",): ["--once"],
    ("cases",): [],
    ("case",): ["1"],
    ("digest",): ["--preview", "out.html"],
    ("export-subject",): ["someone", "--as", "bpatel"],
    ("db", "upgrade"): [],
    ("audit", "verify"): [],
    ("staff", "leave"): ["cjones", "--on", "2027-07-22"],
    ("evidence", "export"): ["1", "--as", "bpatel"],
    ("retention", "purge"): ["--dry-run"],
    ("alerts", "list"): [],
    ("audit", "rotate-key"): ["--new-key-file", "new-audit.key"],
    ("alerts", "cancel"): ["1", "--as", "bpatel", "--reason", "sent by hand"],
    ("user", "add"): ["aokafor"],
    ("user", "reset"): ["aokafor"],
    ("post", "draft"): [
        *("--as", "cjones", "--school", "oakfield"),
        *("--to", "oakfield-bluesky", "--text", "Hello"),
    ],
    ("post", "submit"): ["1", "--as", "cjones"],
    ("post", "show"): ["1"],
    ("post", "list"): ["--week"],
    ("post", "approve"): ["1", "--as", "aokafor"],
    ("post", "reject"): ["1", "--as", "aokafor", "--reason", "date"],
    ("post", "schedule"): ["1", "--as", "cjones", "--at", "2027-06-10 09:00"],
    ("post", "cancel"): ["1", "--as", "cjones", "--reason", "rain"],
    ("post", "withdraw"): ["1", "--as", "aokafor", "--reason", "wrong"],
}
# started in a child process: they configure logging and signal handlers
SERVICE_COMMANDS = {("run",), ("worker",), ("web",)}
NO_DATABASE = {("init",), ("check-config",), ("classify",)}
# the scaled mode's broker, not the database
BROKER_COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("dead-letters", "list"): [],
    ("dead-letters", "requeue"): ["--all"],
    ("dead-letters", "purge"): ["--all", "--yes"],
}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new-audit.key").write_text("k" * 48)  # for audit rotate-key
    monkeypatch.setenv("MONITOR_CONFIG", str(EXAMPLE_CONFIG))
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    url = f"postgresql+psycopg://monitor:hunter2-pw@127.0.0.1:{closed_port()}/monitor"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def test_the_table_covers_every_command() -> None:
    listed = set(DATABASE_COMMANDS) | SERVICE_COMMANDS | NO_DATABASE | set(BROKER_COMMANDS)
    assert listed == set(all_command_paths(app))


def assert_one_line_database_error(output: str, exit_code: int) -> None:
    assert exit_code == 2, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.startswith("database: error:")]
    assert "cannot open postgresql+psycopg://monitor:***@127.0.0.1:" in line
    assert "Connection refused" in line or "connection failed" in line
    assert "hunter2-pw" not in output


@pytest.mark.parametrize("command", sorted(DATABASE_COMMANDS), ids=" ".join)
def test_an_unreachable_database_is_one_line_and_exit_two(
    unreachable: str, command: tuple[str, ...]
) -> None:
    result = runner.invoke(app, [*command, *DATABASE_COMMANDS[command]])
    assert_one_line_database_error(result.output, result.exit_code)


@pytest.mark.parametrize("command", sorted(BROKER_COMMANDS), ids=" ".join)
def test_an_unreachable_broker_is_one_line_and_exit_one(
    command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = f"amqp://monitor:hunter2-pw@127.0.0.1:{closed_port()}/"
    monkeypatch.setenv("MONITOR_BROKER_URL", broker)
    monkeypatch.setenv("MONITOR_REDIS_URL", "redis://127.0.0.1:6379/0")
    result = runner.invoke(app, [*command, *BROKER_COMMANDS[command]])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "hunter2-pw" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "The broker is unreachable: AMQPConnectionError"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(SERVICE_COMMANDS), ids=" ".join)
def test_the_service_does_not_start_on_an_unreachable_database(
    unreachable: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    port = [] if command == ("worker",) else ["--port", str(closed_port())]
    result = subprocess.run(
        [sys.executable, "-m", "monitor", *command, *port],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=tmp_path,
        check=False,
    )
    assert_one_line_database_error(result.stderr + result.stdout, result.returncode)


def test_an_unusable_sqlite_location_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "a-file" / "data"))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("database: error:")]
    assert "a-file" in line and "Not a directory" in line


@pytest.mark.parametrize(
    "args",
    [
        ["case", "99999999999999999999"],
        ["case", "9223372036854775808"],
        ["case", "0"],
        ["evidence", "export", "99999999999999999999", "--as", "bpatel"],
        ["cases", "--limit", "99999999999999999999"],
    ],
    ids=" ".join,
)
def test_an_id_out_of_range_is_a_usage_error(cli_env: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_largest_id_is_simply_not_found(cli_env: Path) -> None:
    result = runner.invoke(app, ["case", str(2**63 - 1)])
    assert result.exit_code == 2, result.output
    assert f"No case {2**63 - 1}." in result.output


@pytest.mark.parametrize("command", sorted(BROKER_COMMANDS), ids=" ".join)
def test_the_dead_letter_commands_name_the_missing_extra(
    command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.commands import dead_letters

    monkeypatch.setenv("MONITOR_BROKER_URL", f"amqp://127.0.0.1:{closed_port()}/")
    monkeypatch.setenv("MONITOR_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setattr(dead_letters, "scale_extra_installed", lambda: False)
    result = runner.invoke(app, [*command, *BROKER_COMMANDS[command]])
    assert result.exit_code == 2
    assert result.output.strip() == 'The scaled mode needs its extra: pip install -e ".[scale]"'
