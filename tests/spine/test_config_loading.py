"""Configuration: the example is valid; mistakes are all reported with file, line and field."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from monitor.config import ConfigError, Problem, load_config
from monitor.config_models import parse_duration
from tests.conftest import EXAMPLE_CONFIG

GOOD_HEADER = """\
organisation:
  name: Test Trust
schools:
  - key: oak
    name: Oak Primary
staff:
  - id: a1
    name: Ann
    roles: [comms, slt]
  - id: a2
    name: Bob
    roles: [moderator]
"""


def write(tmp_path: Path, text: str, name: str = "monitor.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return caught.value.problems


def test_example_config_is_valid_without_any_secrets() -> None:
    loaded = load_config(EXAMPLE_CONFIG, environ={})
    assert loaded.warnings == ()
    assert {a.key for a in loaded.config.accounts} == {
        "oakfield-bluesky",
        "oakfield-mastodon",
        "riverside-reddit",
    }


FIVE_MISTAKES = """\
organisation:
  name: Test Trust
  timezone: Europe/Londn
schools:
  - key: oak
    name: Oak Primary
staff:
  - id: a1
    name: Ann
    roles: [comms]
  - id: a2
    name: Bob
    roles: [moderatr]
accounts:
  - key: oak-bsky
    platform: bluesky
    handle: oak.bsky.social
    school: oak
    admins: [a1, zz9]
  - key: oak-bsky
    platform: mastodon
    handle: oak@m.example
    school: oak
    admins: [a1, a2]
    credentials:
      access_token: {env: UNSET_TOKEN_FOR_TEST}
"""


def test_five_mistakes_give_five_located_errors(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_MISTAKES)
    found = problems_of(path)
    assert [(p.line, p.field) for p in found] == [
        (3, "organisation.timezone"),
        (13, "staff[1].roles[0]"),
        (19, "accounts[0].admins[1]"),
        (20, "accounts[1].key"),
        (26, "accounts[1].credentials.access_token"),
    ]
    assert all(p.file == str(path) and not p.warning for p in found)
    messages = [p.message for p in found]
    assert "unknown timezone 'Europe/Londn'" in messages[0]
    assert "'moderator'" in messages[1]
    assert "unknown staff id 'zz9'" in messages[2]
    assert "duplicate key 'oak-bsky' (first used at line 15)" in messages[3]
    assert "UNSET_TOKEN_FOR_TEST" in messages[4]


def test_unknown_field_and_yaml_syntax_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_HEADER + "digest:\n  weekday: monday\n  sendto: [a1]\n")
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (15, "digest.sendto")
    assert "unknown field" in problem.message

    broken = write(tmp_path, GOOD_HEADER + "accounts: [\n", name="broken.yaml")
    [problem] = problems_of(broken)
    assert problem.field == "(syntax)" and problem.line is not None


def test_included_file_errors_name_the_included_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        accounts:
          - key: oak-bsky
            platform: bluesky
            handle: oak.bsky.social
            school: oak
            admins: [a1, nobody]
        """,
        name="accounts.yaml",
    )
    main = write(tmp_path, GOOD_HEADER + "include: [accounts.yaml]\n")
    [problem] = problems_of(main)
    assert problem.file.endswith("accounts.yaml")
    assert (problem.line, problem.field) == (6, "accounts[0].admins[1]")


def test_includes_merge_lists(tmp_path: Path) -> None:
    write(tmp_path, "schools:\n  - key: elm\n    name: Elm Academy\n", name="more.yaml")
    main = write(tmp_path, GOOD_HEADER + "include: [more.yaml]\n")
    loaded = load_config(main, environ={})
    assert [s.key for s in loaded.config.schools] == ["oak", "elm"]


def test_secrets_come_from_env_or_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("s3cret\n")
    body = (
        GOOD_HEADER
        + """\
accounts:
  - key: oak-masto
    platform: mastodon
    handle: oak@m.example
    school: oak
    admins: [a1, a2]
    approved_by: a1
    linked_email: office@oak.example.sch.uk
    credentials:
      access_token: {env: OAK_TOKEN}
"""
    )
    path = write(tmp_path, body)
    assert load_config(path, environ={"OAK_TOKEN": "x"}).warnings == ()
    assert load_config(path, environ={"OAK_TOKEN_FILE": str(secret_file)})
    [problem] = problems_of(path, environ={"OAK_TOKEN_FILE": str(tmp_path / "missing")})
    assert "cannot be read" in problem.message
    assert "s3cret" not in str(problem)


def test_policy_gaps_are_warnings_not_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEADER
        + """\
accounts:
  - key: oak-bsky
    platform: bluesky
    handle: oak.bsky.social
    school: oak
    admins: [a1]
""",
    )
    loaded = load_config(path, environ={})
    messages = [w.message for w in loaded.warnings]
    assert any("fewer than two active administrators" in m for m in messages)
    assert any("approved_by" in m for m in messages)
    assert any("linked_email" in m for m in messages)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300.0), ("5m", 300.0), ("1.5h", 5400.0), ("2d", 172800.0), ("45 s", 45.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 weeks", "", -1, 0, True, "m5"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    """YAML would keep the last value unseen; here both places are named."""
    path = write(
        tmp_path,
        GOOD_HEADER
        + """\
accounts:
  - key: oak-bsky
    platform: bluesky
    handle: oak.bsky.social
    school: oak
    admins: [a1, a2]
    poll_interval: 5m
    approved_by: a1
    linked_email: office@oak.example.sch.uk
    poll_interval: 1s
""",
    )
    [problem] = problems_of(path)
    assert (problem.file, problem.line, problem.field) == (
        str(path),
        22,
        "accounts[0].poll_interval",
    )
    assert problem.message == "defined twice (first at line 19); remove one"


def test_wrong_shapes_are_explained_without_class_names(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_HEADER + "accounts:\n  - just a string\n")
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (14, "accounts[0]")
    assert "dictionary" in problem.message and "instance of" not in problem.message


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    """Errors of every stage at once: YAML structure, field validation and cross-references."""
    body = FIVE_MISTAKES.replace("  name: Test Trust\n", "  name: Test Trust\n  name: Again\n")
    found = problems_of(write(tmp_path, body))
    assert len(found) == 6
    assert {p.field for p in found} >= {"organisation.name", "accounts[1].key"}
