"""Platform text is shown as written: no rich markup from a handle, no terminal escapes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import cases
from monitor.cli import app
from monitor.config import load_config
from monitor.constants import Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()
WIDE = {"COLUMNS": "400"}

SPOOF_HANDLE = "[bold red]x[/] [link=https://evil.example]DSL on duty[/link]"
ESCAPES = "\x1b[2J\x1b[31mYOUR ACCOUNT IS LOCKED\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
TEXT = f"{ESCAPES} then [/bold] and :red_circle: and \u202eevil\u202c\nsecond line"
TITLE = "Abuse on oakfield-bluesky [/bold] [blink]x[/blink]"


def seed(sessions: sessionmaker[Session], now: datetime) -> int:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        item = t.Item(
            platform="bluesky",
            platform_id="at://x/1",
            account_id=account.id,
            stream="replies",
            kind="reply",
            url="https://bsky.app/profile/x/post/1?[/bold]",
            author_id="did:plc:x",
            author_handle=SPOOF_HANDLE,
            text=TEXT,
            created_at=now,
            seen_at=now,
        )
        session.add(item)
        session.flush()
        case, _ = cases.open_case(
            session,
            dedupe_key=f"item:{item.id}",
            category=Category.ABUSIVE,
            severity=Severity.HIGH,
            title=TITLE,
            now=now,
            item_id=item.id,
            account_id=account.id,
            school_id=account.school_id,
            restricted=False,
        )
        return case.id


def test_case_view_shows_a_spoofing_handle_as_written_and_never_crashes(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed(sessions, now)
    result = runner.invoke(app, ["case", str(case_id)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"@{SPOOF_HANDLE}:" in result.output  # literally, not red bold with a link
    assert "[/bold] [blink]x[/blink]" in result.output  # the title, literally
    assert "?[/bold]" in result.output  # the URL
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "YOUR ACCOUNT IS LOCKED" in result.output  # the text itself is still shown
    assert ":red_circle:" in result.output and "🔴" not in result.output
    assert "second line" in result.output


def test_case_list_shows_titles_as_written(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed(sessions, now)
    result = runner.invoke(app, ["cases"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "[/bold] [blink]x[/blink]" in result.output


def test_status_shows_a_platform_error_as_written(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed(sessions, now)
    with transaction(sessions) as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        account_queries.mark_failure(
            session,
            account.id,
            now,
            kind="refused",
            message="HTTP 400: [/red] [bold]" + ESCAPES,
            retry_at=now + timedelta(minutes=5),
            pause=False,
        )
    result = runner.invoke(app, ["status"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "HTTP 400: [/red] [bold]" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


@pytest.mark.parametrize(
    ("text", "options", "shown"),
    [
        ("[bold]x[/bold]", {}, r"\[bold]x\[/bold]"),
        ("[bold]x[/bold]", {"markup": False}, "[bold]x[/bold]"),
        ("a\x1b[31mb", {"markup": False}, "a [31mb"),
        ("a\x9bb\x07c\x00d", {"markup": False}, "a b c d"),
        ("left\u202eright\u2066", {"markup": False}, "left right "),
        ("one\ntwo\u2028three", {"markup": False}, "one two three"),
        ("one\ntwo", {"markup": False, "newlines": True}, "one\ntwo"),
        ("one\rtwo", {"markup": False, "newlines": True}, "one two"),
        ("👩\u200d👧 café", {"markup": False}, "👩\u200d👧 café"),
        ("abcdef", {"markup": False, "limit": 4}, "abc…"),
        (None, {}, ""),
    ],
)
def test_terminal_text(text: str | None, options: dict[str, object], shown: str) -> None:
    from monitor.display import terminal_text

    assert terminal_text(text, **options) == shown  # type: ignore[arg-type]
