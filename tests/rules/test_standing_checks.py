"""The standing checks' table: facts -> the problem (a case's title) or why it is fine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.constants import Category, Role, Severity
from monitor.rules.permissions import SELF_CLOSING
from monitor.rules.standing_checks import (
    ACCOUNT_REGISTER,
    CLASSIFIER_DOWN,
    HANDOVER_BLOCKED,
    LOGIN_REFUSED,
    MONITORING_GAP,
    REPORTED_CHECKS,
    SCHOOL_WITHOUT_DSL,
    STANDING_CHECKS,
    TWO_ADMINS,
    AdminFacts,
    DslFacts,
    Fine,
    GapFacts,
    HandoverFacts,
    LoginFacts,
    ModelFacts,
    Outcome,
    Problem,
    RegisterFacts,
    StandingCheck,
    Unchanged,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
R = Role

ROWS: list[tuple[StandingCheck, object, Outcome]] = [
    (TWO_ADMINS, AdminFacts("oak-bsky", ["a", "b"]), Fine("now has 2 active administrators")),
    (
        TWO_ADMINS,
        AdminFacts("oak-bsky", ["a"], ["c"]),
        Problem(
            "oak-bsky has 1 active administrator; policy needs at least 2 (c past their leaving date)",
            {"admins": ["a"], "past_leaving_date": ["c"]},
        ),
    ),
    (
        TWO_ADMINS,
        AdminFacts("oak-bsky", ["a", "a"]),  # the same person twice is one administrator
        Problem(
            "oak-bsky has 1 active administrator; policy needs at least 2",
            {"admins": ["a", "a"], "past_leaving_date": []},
        ),
    ),
    (
        SCHOOL_WITHOUT_DSL,
        DslFacts(
            "oak", "Oak", enabled_accounts=1, dsls_in_post=[], not_in_post=["d left 2026-11-01"]
        ),
        Problem(
            "Oak has no DSL or deputy DSL in post: its safeguarding alerts go to the principal "
            "(or SLT) instead (d left 2026-11-01)",
            {"school": "oak", "not_in_post": ["d left 2026-11-01"]},
        ),
    ),
    (
        SCHOOL_WITHOUT_DSL,
        DslFacts("oak", "Oak", enabled_accounts=2, dsls_in_post=["d", "e"]),
        Fine("a DSL or deputy DSL is in post: d, e"),
    ),
    (
        SCHOOL_WITHOUT_DSL,
        DslFacts("oak", "Oak", enabled_accounts=0, dsls_in_post=[]),
        Fine("none of the school's accounts is watched"),
    ),
    (
        ACCOUNT_REGISTER,
        RegisterFacts("oak-bsky", None, "office@oak.sch.uk"),
        Problem(
            "oak-bsky is not compliant: no approving senior leader recorded",
            {"problems": ["no approving senior leader recorded"]},
        ),
    ),
    (
        ACCOUNT_REGISTER,
        RegisterFacts("oak-bsky", "head", "o@oak.sch.uk"),
        Fine("register complete"),
    ),
    (
        MONITORING_GAP,
        GapFacts("oak-bsky", None, NOW - 2 * HOUR, HOUR, NOW, "timeout"),
        Problem(
            "oak-bsky has not been checked successfully since never",
            {"last_success": "never", "last_error": "timeout"},
        ),
    ),
    (
        MONITORING_GAP,
        GapFacts("oak-bsky", NOW - HOUR / 2, NOW - 9 * HOUR, HOUR, NOW),
        Fine("checked successfully again"),
    ),
    (
        HANDOVER_BLOCKED,
        HandoverFacts("cj", "C Jones", "it would leave oak-bsky with 1 administrator"),
        Problem(
            "Handover for C Jones blocked: it would leave oak-bsky with 1 administrator",
            {"leaver": "cj"},
        ),
    ),
    (HANDOVER_BLOCKED, HandoverFacts("cj", "C Jones", None), Fine("the handover went ahead")),
]


@pytest.mark.parametrize(("check", "facts", "outcome"), ROWS)
def test_each_check_decides_from_its_facts(
    check: StandingCheck, facts: object, outcome: Outcome
) -> None:
    assert check.problem(facts) == outcome


def test_the_table() -> None:
    # every row's cases are told to its category's route, with the severity it says
    assert {c.name: (c.requirement, c.severity) for c in STANDING_CHECKS} == {
        "two_admins": ("R3", Severity.HIGH),
        "school_without_dsl": ("R6", Severity.HIGH),
        "account_register": ("R13", Severity.MEDIUM),
        "monitoring_gap": ("R1", Severity.HIGH),
    }
    assert TWO_ADMINS.audience == {R.SLT, R.PRINCIPAL}
    assert MONITORING_GAP.audience == {R.IT_ADMIN}
    assert [c.name for c in STANDING_CHECKS if c.after_change] == [
        "two_admins",
        "school_without_dsl",
        "account_register",
    ]
    assert TWO_ADMINS.prefix("oak-bsky") == "two_admins:oak-bsky:"


def test_every_case_that_closes_itself_has_a_check() -> None:
    # a case nobody may close by hand must be closed by a check (or the no-DSL settling)
    checked = {c.category for c in (*STANDING_CHECKS, HANDOVER_BLOCKED)}
    assert SELF_CLOSING - checked == {Category.SAFEGUARDING_NO_DSL}


DOWN = ModelFacts(False, "Toxicity model m unavailable since 10:00: no file. Fix: get it.")

REPORTED_ROWS: list[tuple[StandingCheck, object, Outcome]] = [
    (LOGIN_REFUSED, LoginFacts("oak-bsky", True), Fine("the account logged in again")),
    (
        LOGIN_REFUSED,
        LoginFacts("oak-bsky", False, "401 bad password"),
        Problem(
            "oak-bsky cannot log in: polling is paused until its credentials are fixed",
            {"error": "401 bad password"},
        ),
    ),
    # a poll that failed for another reason says nothing about the login
    (LOGIN_REFUSED, LoginFacts("oak-bsky", None, "timeout"), Unchanged()),
    (
        CLASSIFIER_DOWN,
        DOWN,
        Problem(
            "Toxicity model unavailable: comments are checked by the rules alone",
            {"message": DOWN.message},
        ),
    ),
    (CLASSIFIER_DOWN, ModelFacts(True, "loaded"), Fine("the model loaded again")),
    # not loaded yet (it loads on first use): nothing either way
    (CLASSIFIER_DOWN, ModelFacts(None), Unchanged()),
]


@pytest.mark.parametrize(("check", "facts", "outcome"), REPORTED_ROWS)
def test_each_reported_check_decides_from_what_the_worker_saw(
    check: StandingCheck, facts: object, outcome: Outcome
) -> None:
    assert check.problem(facts) == outcome


def test_the_reported_rows() -> None:
    assert {
        c.name: (c.requirement, c.category, c.severity, c.watches.reported) for c in REPORTED_CHECKS
    } == {
        "connector_auth": ("R1", Category.CONNECTOR_AUTH, Severity.HIGH, True),
        "classifier_down": ("R1", Category.CLASSIFIER_DOWN, Severity.MEDIUM, True),
    }
    assert LOGIN_REFUSED.audience == CLASSIFIER_DOWN.audience == {R.IT_ADMIN}
    assert not any(c.after_change for c in REPORTED_CHECKS)
    assert not any(c.watches.reported for c in STANDING_CHECKS)
    # the cases keep the dedupe keys they had: one per account, one for the model
    assert LOGIN_REFUSED.prefix("oak-bsky") == "connector_auth:oak-bsky:"
    assert CLASSIFIER_DOWN.prefix() == "classifier_down:"
