"""The configuration's policy warnings come from the rules in monitor/rules, not a second copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import config
from monitor.config import load_config
from monitor.rules import engine
from monitor.rules.engine import REGISTER_FIELDS, register_gaps, register_problems
from monitor.rules.staff import ROLE_OVERRIDES
from tests.spine.test_config_loading import GOOD_HEADER, write

ACCOUNT = """\
accounts:
  - key: oak-bsky
    platform: bluesky
    handle: oak.bsky.social
    school: oak
    admins: [a1, a2]
    approved_by: a1
    linked_email: office@oak.sch.uk
"""


@pytest.mark.parametrize(
    ("approved_by", "linked_email", "gaps"),
    [
        ("head", "o@oak.sch.uk", []),
        (None, "o@oak.sch.uk", [("approved_by", "no approving senior leader")]),
        ("head", "", [("linked_email", "no linked school email")]),
        (None, None, list(REGISTER_FIELDS)),
    ],
)
def test_register_gaps(
    approved_by: str | None, linked_email: str | None, gaps: list[tuple[str, str]]
) -> None:
    assert register_gaps(approved_by=approved_by, linked_email=linked_email) == gaps
    # the standing check's wording of the same gaps
    assert register_problems(approved_by=approved_by, linked_email=linked_email) == [
        f"{missing} recorded" for _, missing in gaps
    ]


def test_a_complete_account_has_no_warnings(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD_HEADER + ACCOUNT), environ={}).warnings == ()


def test_the_two_administrator_warning_follows_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD_HEADER + ACCOUNT)
    monkeypatch.setattr(engine, "MIN_ADMINS", 3)  # one definition of the minimum
    [warning] = load_config(path, environ={}).warnings
    assert warning.field == "accounts[0].admins"
    assert "fewer than two active administrators (policy R3)" in warning.message


def test_the_register_warnings_follow_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD_HEADER + ACCOUNT.replace("    approved_by: a1\n", ""))
    monkeypatch.setattr(engine, "REGISTER_FIELDS", (("approved_by", "nobody approved it"),))
    messages = [w.message for w in load_config(path, environ={}).warnings]
    assert messages == ["nobody approved it (approved_by): reported as non-compliant (R13)"]


def test_routing_roles_are_the_rules_overrides(tmp_path: Path) -> None:
    extra = "routing:\n" + "".join(f"  {role}: [nobody]\n" for role in ROLE_OVERRIDES)
    found = []
    try:
        load_config(write(tmp_path, GOOD_HEADER + ACCOUNT + extra), environ={})
    except config.ConfigError as exc:
        found = [p.message for p in exc.problems]
    assert found == [f"unknown staff id 'nobody' in routing.{role}" for role in ROLE_OVERRIDES]
