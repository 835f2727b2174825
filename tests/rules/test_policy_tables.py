"""The policy tables that used to live beside their callers, as behaviour; rules/ stays pure."""

from __future__ import annotations

import ast
from datetime import UTC, datetime

import pytest

from monitor.config_models import Digest, Routing
from monitor.constants import ActionKind, Role
from monitor.digest.send import recipients_for
from monitor.directory import Directory, Person
from monitor.rules.permissions import staff_change_refusal
from monitor.rules.platform_actions import (
    CHECK_AFTER,
    EVIDENCE_FIRST,
    FALLBACK_AUTHOR_STEPS,
    FALLS_BACK,
    VERIFIED,
)
from tests.conftest import REPO

R = Role
A = ActionKind
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("roles", "refused"),
    [
        ({R.SLT}, False),
        ({R.PRINCIPAL}, False),
        ({R.IT_ADMIN}, False),
        ({R.DSL}, True),
        ({R.COMMS, R.MODERATOR}, True),
        ({R.DEPUTY_DSL, R.SLT}, False),
        (set(), True),
    ],
)
def test_who_may_record_a_leaver(roles: set[Role], refused: bool) -> None:
    why = staff_change_refusal(roles)
    assert (why is not None) is refused
    if why:  # the refusal names the roles that may
        assert why == "recording a leaver needs one of these roles: it_admin, principal, slt"


def test_the_digest_goes_to_leaders_in_post_of_the_school() -> None:
    def person(key: str, role: Role, schools: set[str], active: bool = True) -> Person:
        return Person(key, key, f"{key}@s.uk", None, frozenset({role}), frozenset(schools), active)

    people = (
        person("head", R.PRINCIPAL, {"oak"}),
        person("slt", R.SLT, {"oak"}),
        person("ceo", R.SLT, set()),
        person("gone", R.SLT, {"oak"}, active=False),
        person("elmhead", R.PRINCIPAL, {"elm"}),
        person("dsl", R.DSL, {"oak"}),
        person("it", R.IT_ADMIN, set()),
    )
    directory = Directory(people, Routing(), now=NOW)
    scopes = ["trust", "school:oak", "school:elm"]
    # the school's own leaders read its digest; the trust-wide CEO reads the trust's instead
    assert recipients_for(directory, Digest(), "school:oak", scopes) == ["head@s.uk", "slt@s.uk"]
    assert recipients_for(directory, Digest(), "trust", scopes) == ["ceo@s.uk"]


@pytest.mark.parametrize(
    ("kind", "evidence_first", "verified", "falls_back"),
    [
        (A.HIDE, True, True, True),
        (A.REMOVE, True, True, True),
        (A.REPORT, True, True, False),
        (A.BLOCK, True, False, False),
        (A.MUTE, True, False, False),
        (A.UNHIDE, False, False, False),
        (A.REPLY, False, False, False),
    ],
)
def test_how_each_platform_action_is_carried_out(
    kind: ActionKind, evidence_first: bool, verified: bool, falls_back: bool
) -> None:
    assert (kind in EVIDENCE_FIRST) is evidence_first  # R7
    assert (kind in VERIFIED) is verified  # R8
    assert (kind in FALLS_BACK) is falls_back  # R5


def test_the_last_check_is_the_removal_target_and_the_fallback_blocks_first() -> None:
    assert max(CHECK_AFTER).total_seconds() == 24 * 3600  # R8: within 24 hours
    assert list(CHECK_AFTER) == sorted(CHECK_AFTER)
    assert FALLBACK_AUTHOR_STEPS[0] is A.BLOCK


# what a pure rule may import: the vocabulary, the clock helpers and the connector data shapes
# the configuration's pydantic models are data (no I/O): a check of the config may read them
ALLOWED = (
    "monitor.rules",
    "monitor.constants",
    "monitor.clock",
    "monitor.config_models",
    "connectors.base",
)


@pytest.mark.parametrize(
    "module", sorted(p.name for p in (REPO / "monitor" / "rules").glob("*.py"))
)
def test_rules_import_no_directory_storage_or_io(module: str) -> None:
    tree = ast.parse((REPO / "monitor" / "rules" / module).read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = {name for name in imported if name.split(".")[0] in {"monitor", "connectors"}}
    assert all(name.startswith(ALLOWED) for name in ours), sorted(ours)
    assert not imported & {"sqlalchemy", "sqlalchemy.orm", "requests", "socket", "smtplib"}
