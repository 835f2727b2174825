"""``monitor digest --preview`` and ``--send`` through the real command line."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.commands import digest as digest_command
from monitor.storage import tables as t
from tests.digest import seed_digest as sd
from tests.digest.conftest import SMTP_PASSWORD, SMTP_USER, Mailbox

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def make_app() -> typer.Typer:
    # monitor/cli.py registers this module too; a bare app keeps the test to this command
    app = typer.Typer()
    digest_command.register(app)

    @app.command("noop")
    def noop() -> None:
        """Keeps typer in multi-command mode, as in monitor/cli.py."""

    return app


@pytest.fixture
def config_file(cli_env: Path, sessions: sessionmaker[Session]) -> Path:
    sd.insert(sessions, sd.make_config(), sd.build())
    return sd.write_config(cli_env / "trust.yaml")


def test_preview_writes_html_and_text(config_file: Path, cli_env: Path) -> None:
    out = cli_env / "out" / "digest.html"
    result = runner.invoke(
        make_app(),
        ["digest", "--preview", str(out), "--week", sd.WEEK, "--config", str(config_file)],
    )
    assert result.exit_code == 0, result.output
    assert "16 to 22 Nov 2026" in result.output
    html = out.read_text(encoding="utf-8")
    text = (cli_env / "out" / "digest.txt").read_text(encoding="utf-8")
    assert "cid:" not in html
    sources = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(sources) == 3
    assert all(base64.b64decode(s).startswith(b"\x89PNG\r\n\x1a\n") for s in sources)
    assert "WEEKLY SOCIAL MEDIA DIGEST: Northfield & <Trust>" in text
    assert "(week 2026-W47)" in text
    assert sd.SG_TEXT not in html and sd.SG_TEXT not in text


def test_preview_of_one_school(config_file: Path, cli_env: Path) -> None:
    out = cli_env / "oak.html"
    result = runner.invoke(
        make_app(),
        [
            "digest",
            "--preview",
            str(out),
            "--week",
            sd.WEEK,
            "--school",
            "oak",
            "--config",
            str(config_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Oak &lt;script&gt;" in out.read_text(encoding="utf-8")
    assert "river.bsky.social" not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --preview"),
        (["--send", "--preview", "x.html"], "exactly one of --preview"),
        (["--preview", "x.html", "--week", "2026-47"], "not an ISO week"),
        (["--preview", "x.html", "--school", "nope"], "No school 'nope'"),
    ],
)
def test_bad_arguments(config_file: Path, args: list[str], message: str) -> None:
    result = runner.invoke(make_app(), ["digest", *args, "--config", str(config_file)])
    assert result.exit_code == 2
    assert message in result.output


def test_send_without_smtp_settings_says_so(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, sessions: sessionmaker[Session]
) -> None:
    for name in ("SMTP_HOST", "SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(make_app(), ["digest", "--send", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "SMTP is not configured: set SMTP_HOST and SMTP_FROM" in result.output
    with sessions() as session:
        assert session.scalars(select(t.DigestRun)).all() == []


@pytest.mark.peer
def test_send_now_then_never_again(
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    mailbox: Mailbox,
    smtp_port: int,
) -> None:
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(smtp_port))
    monkeypatch.setenv("SMTP_FROM", "Trust Monitor <digest@trust.example>")
    monkeypatch.setenv("SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    args = ["digest", "--send", "--week", sd.WEEK, "--config", str(config_file)]
    first = runner.invoke(make_app(), args)
    assert first.exit_code == 0, first.output
    assert "2026-W47 trust: sent, sent to 1 recipient(s)" in first.output
    assert "2026-W47 school:oak: sent, sent to 1 recipient(s)" in first.output
    mailbox.wait_for(3)
    assert SMTP_PASSWORD not in first.output
    second = runner.invoke(make_app(), args)
    assert second.exit_code == 0, second.output
    assert second.output.count("already sent") == 3
    assert len(mailbox.received) == 3
