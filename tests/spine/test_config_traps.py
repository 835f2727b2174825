"""Configuration traps are refused with a located error before they can bite.

YAML 1.1 reads an unquoted ``17:00`` as the base-60 number 1020 and ``7.30`` as 7.3; a few
lines of nested aliases expand to billions of values; a file saved in Latin-1 is not text.
Each is reported with file, line and field, exit 2 and no traceback.
"""

from __future__ import annotations

import datetime as dt
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config
from tests.conftest import EXAMPLE_CONFIG, REPO
from tests.spine.test_config_loading import GOOD_HEADER, problems_of, write

runner = CliRunner()
HEADER_LINES = GOOD_HEADER.count("\n")


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("response_targets:\n  end_of_day: {}\n", "17:00", "response_targets.end_of_day"),
        ("response_targets:\n  end_of_day: {}\n", "17", "response_targets.end_of_day"),
        ("digest:\n  time: {}\n", "7.30", "digest.time"),
        ("digest:\n  time: {}\n", "7:30", "digest.time"),
        ("routing:\n  quiet_hours: [{}, '07:00']\n", "20:00", "routing.quiet_hours[0]"),
        ("routing:\n  quiet_hours: ['20:00', {}]\n", "7.00", "routing.quiet_hours[1]"),
    ],
)
def test_an_unquoted_time_of_day_is_a_located_error_that_says_to_quote_it(
    tmp_path: Path, section: str, value: str, field: str
) -> None:
    path = write(tmp_path, GOOD_HEADER + section.format(value))
    [problem] = problems_of(path)
    assert (problem.file, problem.line, problem.field) == (str(path), HEADER_LINES + 2, field)
    assert "quotes" in problem.message and not problem.warning


def test_a_clock_value_on_its_own_line_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_HEADER + "response_targets:\n  end_of_day:\n    17:00\n")
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (HEADER_LINES + 3, "response_targets.end_of_day")
    assert "unquoted 17:00" in problem.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("within", "24:00"), ("reminder_before", "1:30"), ("gap_limit", "1:30:00")],
)
def test_a_duration_written_as_a_clock_is_refused_not_read_in_base_60(
    tmp_path: Path, field: str, value: str
) -> None:
    """``within: 24:00`` would otherwise be 1440 seconds: 24 minutes, not a day."""
    if field == "gap_limit":
        section = (
            "accounts:\n  - key: oak-bsky\n    platform: bluesky\n    handle: oak.bsky.social\n"
            f"    school: oak\n    admins: [a1, a2]\n    {field}: {value}\n"
        )
        line, name = HEADER_LINES + 7, f"accounts[0].{field}"
    else:
        section = f"response_targets:\n  {field}: {value}\n"
        line, name = HEADER_LINES + 2, f"response_targets.{field}"
    [problem] = problems_of(write(tmp_path, GOOD_HEADER + section))
    assert (problem.line, problem.field) == (line, name)
    assert f"unquoted {value}" in problem.message and "with a unit" in problem.message


def test_quoted_times_load_as_local_wall_times(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEADER
        + 'response_targets:\n  end_of_day: "16:30"\n  within: 86400\n'
        + "routing:\n  quiet_hours: ['20:00', '7:00']\n"
        + 'digest:\n  time: "07:45"\n',
    )
    config = load_config(path, environ={}).config
    assert config.response_targets.end_of_day == dt.time(16, 30)
    assert config.response_targets.end_of_day.tzinfo is None  # 1020 became 00:17 *UTC*
    assert config.response_targets.within == 86400.0  # a plain number of seconds is fine
    assert config.routing.quiet_hours == (dt.time(20, 0), dt.time(7, 0))
    assert config.digest.time == dt.time(7, 45)


@pytest.mark.parametrize("value", [1020, 7.3, True, "25:00", "5pm", "17.00"])
def test_parse_time_of_day_refuses_numbers_and_nonsense(value: object) -> None:
    from monitor.config_models import parse_time_of_day

    with pytest.raises(ValueError, match="quotes"):
        parse_time_of_day(value)


def test_the_example_and_readme_write_times_in_quotes() -> None:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    assert raw["response_targets"]["end_of_day"] == "17:00"
    assert raw["digest"]["time"] == "07:30"
    assert raw["routing"]["quiet_hours"] == ["20:00", "07:00"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name, default in (("end_of_day", '"17:00"'), ("time", '"07:30"')):
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `{name}` |")]
        assert row.endswith(f"| `{default}` |"), row
    assert '`quiet_hours: ["20:00", "07:00"]`' in readme


def test_a_file_that_is_not_utf8_is_a_located_error(cli_env: Path) -> None:
    path = cli_env / "latin1.yaml"
    path.write_bytes(GOOD_HEADER.replace("Oak Primary", "Caf\xe9 Primary").encode("latin-1"))
    result = runner.invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:5: error: (file): not UTF-8" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def billion_laughs(levels: int = 9) -> str:
    """Nine lines that expand to 10**9 strings."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_a_yaml_alias_bomb_is_refused_quickly_and_within_a_memory_cap(tmp_path: Path) -> None:
    """In a child limited to 512 MB and 60 s: today it grew to gigabytes."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    cap = 512 * 2**20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"{bomb}:4: error: (aliases):" in result.stderr
    assert "more than 10,000 values" in result.stderr


def test_modest_aliases_and_self_reference(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEADER.replace(
            "    roles: [comms]\n", "    roles: &team [comms, moderator]\n", 1
        ).replace("    roles: [moderator]\n", "    roles: *team\n")
        + "accounts:\n  - &acc {key: oak-bsky, platform: bluesky, handle: oak.bsky.social,"
        + " school: oak, admins: [a1, a2], approved_by: a1, linked_email: o@oak.example.org}\n",
    )
    config = load_config(path, environ={}).config
    assert [len(s.roles) for s in config.staff] == [2, 2]
    looped = write(tmp_path, GOOD_HEADER + "routing: &r {schools: *r}\n", name="loop.yaml")
    [problem] = problems_of(looped)
    assert (problem.field, problem.line) == ("(aliases)", HEADER_LINES + 1)


def test_duplicate_staff_slack_ids_and_emails_are_located_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEADER.replace(
            "    name: Ann\n", "    name: Ann\n    email: ann@oak.example.org\n"
        ).replace("    name: Bob\n", "    name: Bob\n    email: Ann@Oak.example.org\n")
        + "  - id: a3\n    name: Cat\n    slack_user_id: U0CAT1\n"
        + "  - id: a4\n    name: Dan\n    slack_user_id: U0CAT1\n",
    )
    found = problems_of(path)
    assert [(p.line, p.field) for p in found] == [
        (13, "staff[1].email"),
        (20, "staff[3].slack_user_id"),
    ]
    assert "duplicate email 'Ann@Oak.example.org' (first used at line 9)" in found[0].message
    assert "duplicate slack_user_id 'U0CAT1' (first used at line 17)" in found[1].message


def test_the_time_and_duration_fields_are_found_in_the_models() -> None:
    """The advice for a base-60 value depends on the field; the models say which is which."""
    from monitor.config import DURATION_FIELDS, TIME_FIELDS

    assert {"end_of_day", "quiet_hours", "time"} == TIME_FIELDS
    assert {"within", "reminder_before", "poll_interval", "gap_limit", "assess_every"} <= (
        DURATION_FIELDS
    )
    assert not TIME_FIELDS & DURATION_FIELDS
