"""The configuration's policy warnings come from the rules in monitor/rules, not a second copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import config
from monitor.config import ConfigError, load_config
from monitor.constants import Role
from monitor.rules import engine
from monitor.rules.engine import (
    REGISTER_FIELDS,
    approver_refusal,
    linked_email_refusal,
    register_gaps,
    register_problems,
)
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


@pytest.mark.parametrize(
    ("roles", "refused"),
    [
        ({Role.SLT}, False),
        ({Role.PRINCIPAL}, False),
        ({Role.PRINCIPAL, Role.DSL}, False),
        ({Role.COMMS}, True),
        ({Role.DSL, Role.MODERATOR}, True),
        ({Role.IT_ADMIN}, True),
        (set(), True),
    ],
)
def test_who_may_approve_an_account(roles: set[Role], refused: bool) -> None:
    why = approver_refusal("x1", roles)
    assert (why is not None) is refused
    if why:
        assert "principal or slt" in why and "R13" in why


@pytest.mark.parametrize(
    ("email", "domains", "refused"),
    [
        ("office@oak.sch.uk", ["oak.sch.uk"], False),
        ("Office@OAK.sch.uk", ["oak.sch.uk"], False),
        ("office@mail.oak.sch.uk", ["oak.sch.uk"], False),  # a subdomain
        ("office@oak.sch.uk", ["@oak.sch.uk"], False),
        ("office@trust.org.uk", ["oak.sch.uk", "trust.org.uk"], False),
        ("someone@gmail.com", ["oak.sch.uk"], True),
        ("office@notoak.sch.uk", ["oak.sch.uk"], True),  # not a subdomain
        ("office@oak.sch.uk.evil.com", ["oak.sch.uk"], True),
        ("someone@gmail.com", [], False),  # no domains configured: not checked
    ],
)
def test_the_linked_email_is_the_schools(email: str, domains: list[str], refused: bool) -> None:
    assert (linked_email_refusal(email, school="oak", domains=domains) is not None) is refused


def test_a_wrong_approver_and_email_are_located_errors(tmp_path: Path) -> None:
    header = GOOD_HEADER.replace(
        "    name: Oak Primary\n", "    name: Oak Primary\n    email_domains: [oak.sch.uk]\n"
    )
    text = header + ACCOUNT.replace("approved_by: a1", "approved_by: a2").replace(
        "office@oak.sch.uk", "office@gmail.com"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    found = [(p.field, p.line) for p in caught.value.problems]
    assert found == [("accounts[0].approved_by", 20), ("accounts[0].linked_email", 21)]
    messages = " ".join(p.message for p in caught.value.problems)
    assert "'a2' cannot approve an account" in messages
    assert "'office@gmail.com' is not a oak address" in messages


def test_leavers_in_the_config_are_checked_together(tmp_path: Path) -> None:
    """R3, R4: two leaving dates that together leave one administrator: check-config refuses."""
    staff = (
        GOOD_HEADER.replace(
            "    roles: [moderator]\n", "    roles: [moderator]\n    leaving_date: 2027-01-08\n"
        ).replace(
            "    roles: [comms, slt]\n", "    roles: [comms, slt]\n    leaving_date: 2026-12-18\n"
        )
        + "  - id: a3\n    name: Cat\n    roles: [comms]\n"
    )
    account = ACCOUNT.replace("admins: [a1, a2]", "admins: [a1, a2, a3]")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, staff + account), environ={})
    [problem] = caught.value.problems
    assert problem.field == "accounts[0].admins"
    assert "once a1, a2 have all left" in problem.message
    # one of them naming a successor who takes the role over: accepted
    fixed = (
        staff.replace(
            "    leaving_date: 2027-01-08\n", "    leaving_date: 2027-01-08\n    successor: a4\n"
        )
        + "  - id: a4\n    name: Dan\n    roles: [comms]\n"
    )
    load_config(write(tmp_path, fixed + account), environ={})


def test_a_successor_from_another_school_is_a_located_error(tmp_path: Path) -> None:
    """R4: a leaver's successor in the config must serve the school of the accounts they take."""
    header = GOOD_HEADER.replace(
        "  - key: oak\n    name: Oak Primary\n",
        "  - key: oak\n    name: Oak Primary\n  - key: elm\n    name: Elm Primary\n",
    )
    staff = (
        header.replace(
            "    roles: [moderator]\n",
            "    roles: [moderator]\n    leaving_date: 2027-01-08\n    successor: a3\n",
        )
        + "  - id: a3\n    name: Cat\n    roles: [comms]\n    schools: [elm]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, staff + ACCOUNT), environ={})
    [problem] = caught.value.problems
    assert problem.field == "staff[1].successor"
    assert "does not serve oak, the school of oak-bsky" in problem.message
    # a successor who serves the whole trust (no schools) may take it over
    trust_wide = staff.replace("    schools: [elm]\n", "")
    load_config(write(tmp_path, trust_wide + ACCOUNT), environ={})
