"""`monitor status` through the real CLI: administrators past their leaving date do not count."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.classify.precision import STORE_NAME, Comparison, GuardFigures, PrecisionStore, choose
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


def test_status_shows_what_the_int8_guard_found(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "Classifier precision: not checked yet" in shown.output
    (cli_env / "data").mkdir(exist_ok=True)
    store = PrecisionStore(cli_env / "data" / STORE_NAME)
    found = Comparison(0.2413, "concern_safeguarding", 9, 436, "concern_safeguarding on comment 45")
    mode, reason = choose("auto", found, 0.02)
    store.put(
        "key",
        GuardFigures(
            model="concern/minilm-l6-v1",
            fingerprint="3534503f1842" + "0" * 52,
            requested="auto",
            mode=mode,
            max_diff=found.max_diff,
            worst_label=found.worst_label,
            disagreements=found.disagreements,
            decisions=found.decisions,
            comments=436,
            tolerance=0.02,
            reason=reason,
            checked_at=now.isoformat(),
            fp32_seconds=18.2,
            int8_seconds=12.1,
        ),
    )
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert (
        "concern/minilm-l6-v1: fp32 (precision auto); max score difference 0.2413" in shown.output
    )
    assert "9 of 436 decisions differ" in shown.output and "model 3534503f1842" in shown.output
    assert "staying on fp32: 9 of 436 category decisions differ" in shown.output
