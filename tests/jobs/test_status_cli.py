"""`monitor status` through the real CLI: administrators past their leaving date do not count."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()


def test_status_marks_administrators_past_their_leaving_date(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        # the CLI reads the real clock: one leaving date long past, one far ahead
        for key, last_day in (("cjones", date(2020, 11, 30)), ("fali", date(2099, 7, 22))):
            session.execute(update(t.Staff).where(t.Staff.key == key).values(leaving_on=last_day))
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): line for line in shown.output.splitlines() if "│" in line}
    for account in ("oakfield-bluesky", "oakfield-mastodon (disabled)"):
        assert "Cerys Jones (left 2020-11-30), Dan Murphy (1 in post, needs 2)" in rows[account], (
            rows[account]
        )
    # leaving later this century: still in post, still counted
    assert "Emma Wright, Farah Ali" in rows["riverside-reddit (disabled)"]
    assert "needs 2" not in rows["riverside-reddit (disabled)"]


def test_status_counts_two_administrators_in_post_as_enough(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "Cerys Jones, Dan Murphy" in shown.output
    assert "needs 2" not in shown.output and "left" not in shown.output
