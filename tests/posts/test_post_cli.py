"""``monitor post``: the whole life of a draft from the command line (example configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor import posts
from monitor.cli import app
from monitor.commands import posts as post_commands

runner = CliRunner()
TO = ["--to", "oakfield-bluesky"]


@pytest.fixture(autouse=True)
def _rules_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's released model cannot download here: these tests check the commands, the
    model's part in the checks is tested in test_model_checks.py."""
    monkeypatch.setattr(
        post_commands, "post_checker", lambda cfg, _path: posts.Checker.for_config(cfg)
    )


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["post", *args])
    return result.exit_code, result.output


def test_a_draft_from_writing_to_cancelling(cli_env: Path) -> None:
    code, out = run(
        "draft",
        "--as",
        "cjones",
        "--school",
        "oakfield",
        *TO,
        "--text",
        "Spring concert",
        "--at",
        "2027-03-28 01:30",
    )
    assert code == 2 and "2027-03-28 01:30 does not exist in Europe/London" in out
    code, out = run(
        "draft",
        "--as",
        "cjones",
        "--school",
        "oakfield",
        *TO,
        "--text",
        "Summer fair on Saturday!",
        "--text",
        "Stalls from 10am.",
        "--at",
        "2027-06-10 09:00",
    )
    assert code == 0, out
    assert "Draft 1 saved." in out and "Checks: all passed." in out
    code, out = run("approve", "1", "--as", "bpatel")
    assert code == 2 and "only principal, slt may approve" in out
    code, out = run("approve", "1", "--as", "aokafor")
    assert code == 0, out
    assert "publishing Thu 10 Jun 2027 09:00 BST" in out
    code, out = run("show", "1")
    assert "approved by aokafor" in out and "Part 2: Stalls from 10am." in out
    code, out = run("list")
    assert "Summer fair" in out and "approved" in out
    code, out = run("list", "--week")
    assert "Summer fair" not in out  # June is not this week
    code, out = run("schedule", "1", "--as", "cjones", "--at", "2027-06-11 09:00")
    assert code == 0 and "approve it again" in out
    code, out = run("show", "1")
    assert "(VOID: changed)" in out and "draft" in out
    code, out = run("cancel", "1", "--as", "bpatel", "--reason", "not mine to stop")
    assert code == 2 and "only principal, slt or the drafter may cancel" in out
    code, out = run("cancel", "1", "--as", "cjones", "--reason", " ")
    assert code == 2 and "give a reason" in out
    code, out = run("cancel", "1", "--as", "cjones", "--reason", "moved indoors")
    assert code == 0 and "cancelled" in out
    code, out = run("approve", "1", "--as", "aokafor")
    assert code == 2 and "is cancelled" in out


def test_an_image_needs_alt_text(cli_env: Path, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    code, out = run(
        "draft",
        "--as",
        "cjones",
        "--school",
        "oakfield",
        *TO,
        "--text",
        "Hi",
        "--image",
        str(photo),
    )
    assert code == 2 and "alt text is required" in out


def test_a_publish_time_for_an_unknown_school_is_refused_plainly(cli_env: Path) -> None:
    code, out = run(
        "draft",
        "--as",
        "cjones",
        "--school",
        "nowhere",
        *TO,
        "--text",
        "Summer fair",
        "--at",
        "2027-06-10 09:00",
    )
    assert code == 2 and "unknown school 'nowhere'" in out
