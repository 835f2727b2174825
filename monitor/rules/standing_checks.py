"""The standing checks as one table: what each watches, its problem, severity and audience.

A standing check looks at every subject it watches (an account, a school) and either finds a
problem, and then one case stays open for that subject until it is fixed, or finds it fine,
and then that case closes itself, saying why (R1, R3, R6, R13). ``jobs/compliance.py``
gathers the facts and runs one reconcile loop over these rows; the decisions are here, pure.

Two rows are not gathered on a schedule but reported by the worker as it sees them: a poll
whose login is refused (or that logs in again) and the toxicity model's status after an
assessment run. They are reconciled by the same loop with the facts the worker observed;
when those facts say nothing either way (a poll failed for another reason, the model is not
loaded yet) the outcome is ``Unchanged`` and any case stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from monitor.constants import Category, Role, Severity
from monitor.rules.engine import (
    dsl_problem,
    in_monitoring_gap,
    register_problems,
    two_admin_problem,
)
from monitor.rules.routing import ROUTES


class Watches(StrEnum):
    """What a check looks at."""

    ACCOUNTS = "accounts"  # every account in the register
    POLLED_ACCOUNTS = "polled_accounts"  # every enabled account
    SCHOOLS = "schools"  # every school in the register
    LEAVERS = "leavers"  # a leaver whose handover is due
    LOGINS = "logins"  # an account's latest poll, as the worker reports it
    MODEL = "model"  # the toxicity model, as the worker reports it after assessing

    @property
    def reported(self) -> bool:
        """Whether the worker reports the facts as it sees them (not gathered on a schedule)."""
        return self in {Watches.LOGINS, Watches.MODEL}


@dataclass(frozen=True)
class Problem:
    """A standing problem: the case's title and what it records."""

    title: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fine:
    """No problem: any open case of the subject closes, for this reason."""

    reason: str


@dataclass(frozen=True)
class Unchanged:
    """The facts say nothing either way: any open case stays as it is."""


Outcome = Problem | Fine | Unchanged


@dataclass(frozen=True)
class AdminFacts:
    """R3: an account's administrators in post, and those listed but past their last day."""

    account: str
    admins: Sequence[str]
    past_leaving_date: Sequence[str] = ()


@dataclass(frozen=True)
class DslFacts:
    """R6: a school's enabled accounts, its DSLs in post, and those who no longer count."""

    school: str
    name: str
    enabled_accounts: int
    dsls_in_post: Sequence[str]
    not_in_post: Sequence[str] = ()


@dataclass(frozen=True)
class RegisterFacts:
    """R13: an account's approving senior leader and linked school email."""

    account: str
    approved_by: str | None
    linked_email: str | None


@dataclass(frozen=True)
class GapFacts:
    """R1: an account's last successful check, and its limit."""

    account: str
    last_success: datetime | None
    watched_since: datetime
    gap_limit: timedelta
    now: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class HandoverFacts:
    """R3, R4: a leaver's handover, and why it was refused (None: it went ahead)."""

    leaver: str
    name: str
    refused: str | None


@dataclass(frozen=True)
class LoginFacts:
    """An account's latest poll: logged in (True), login refused (False), or it failed for
    another reason and says nothing about the login (None)."""

    account: str
    logged_in: bool | None
    error: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """The toxicity model: loaded (True), unavailable (False), or not loaded yet because it
    loads on first use (None); ``message`` says why and how to fix it while it is down."""

    loaded: bool | None
    message: str = ""


def two_admins(facts: AdminFacts) -> Outcome:
    """R3: at least two active administrators."""
    problem = two_admin_problem(facts.admins)
    if problem is None:
        return Fine(f"now has {len(set(facts.admins))} active administrators")
    gone = list(facts.past_leaving_date)
    return Problem(
        f"{facts.account} {problem}"
        + (f" ({', '.join(gone)} past their leaving date)" if gone else ""),
        {"admins": sorted(facts.admins), "past_leaving_date": gone},
    )


def dsl_in_post(facts: DslFacts) -> Outcome:
    """R6: a watched school has a DSL or deputy DSL in post."""
    problem = dsl_problem(enabled_accounts=facts.enabled_accounts, dsls_in_post=facts.dsls_in_post)
    if problem is None:
        dsls = list(facts.dsls_in_post)
        return Fine(
            f"a DSL or deputy DSL is in post: {', '.join(dsls)}"
            if dsls
            else "none of the school's accounts is watched"
        )
    gone = list(facts.not_in_post)
    return Problem(
        f"{facts.name} {problem}" + (f" ({', '.join(gone)})" if gone else ""),
        {"school": facts.school, "not_in_post": gone},
    )


def account_register(facts: RegisterFacts) -> Outcome:
    """R13: an approving senior leader and a linked school email."""
    problems = register_problems(approved_by=facts.approved_by, linked_email=facts.linked_email)
    if not problems:
        return Fine("register complete")
    return Problem(
        f"{facts.account} is not compliant: {'; '.join(problems)}", {"problems": problems}
    )


def monitoring_gap(facts: GapFacts) -> Outcome:
    """R1: checked successfully within the account's limit."""
    if not in_monitoring_gap(
        last_success=facts.last_success,
        watched_since=facts.watched_since,
        gap_limit=facts.gap_limit,
        now=facts.now,
    ):
        return Fine("checked successfully again")
    last = facts.last_success.isoformat() if facts.last_success else "never"
    return Problem(
        f"{facts.account} has not been checked successfully since {last}",
        {"last_success": last, "last_error": facts.last_error},
    )


def handover_blocked(facts: HandoverFacts) -> Outcome:
    """R3, R4: a leaver's handover that would leave an account short stays a case until done."""
    if facts.refused is None:
        return Fine("the handover went ahead")
    return Problem(f"Handover for {facts.name} blocked: {facts.refused}", {"leaver": facts.leaver})


def login_refused(facts: LoginFacts) -> Outcome:
    """R1: an account whose login is refused is not watched; polling pauses until it is fixed."""
    if facts.logged_in is None:
        return Unchanged()
    if facts.logged_in:
        return Fine("the account logged in again")
    return Problem(
        f"{facts.account} cannot log in: polling is paused until its credentials are fixed",
        {"error": facts.error},
    )


def classifier_down(facts: ModelFacts) -> Outcome:
    """R1: while the toxicity model is unavailable comments are checked by the rules alone."""
    if facts.loaded is None:
        return Unchanged()
    if facts.loaded:
        return Fine("the model loaded again")
    return Problem(
        "Toxicity model unavailable: comments are checked by the rules alone",
        {"message": facts.message},
    )


@dataclass(frozen=True)
class StandingCheck:
    """One row: what it watches, its problem function, its case's category and severity."""

    name: str  # the cases' key prefix: ``{name}:{subject}:``
    requirement: str
    watches: Watches
    category: Category
    severity: Severity
    problem: Callable[[Any], Outcome]  # facts -> Problem or Fine (pure)
    gone: str = ""  # why a case closes once its subject is no longer watched
    after_change: bool = True  # also checked at once after a configuration or staff change

    @property
    def audience(self) -> frozenset[Role]:
        """Who is told when the case opens (the category's route)."""
        return ROUTES[self.category].roles

    def prefix(self, subject: str | None = None) -> str:
        """The dedupe-key prefix of this check's cases (of one subject when given)."""
        return f"{self.name}:" if subject is None else f"{self.name}:{subject}:"


C = Category
TWO_ADMINS = StandingCheck(
    "two_admins", "R3", Watches.ACCOUNTS, C.TWO_ADMINS, Severity.HIGH, two_admins,
    gone="the account is no longer in the register",
)  # fmt: skip
SCHOOL_WITHOUT_DSL = StandingCheck(
    "school_without_dsl", "R6", Watches.SCHOOLS, C.SCHOOL_WITHOUT_DSL, Severity.HIGH, dsl_in_post,
    gone="the school is no longer in the register",
)  # fmt: skip
ACCOUNT_REGISTER = StandingCheck(
    "account_register", "R13", Watches.ACCOUNTS, C.ACCOUNT_REGISTER, Severity.MEDIUM,
    account_register, gone="the account is no longer in the register",
)  # fmt: skip
MONITORING_GAP = StandingCheck(
    "monitoring_gap", "R1", Watches.POLLED_ACCOUNTS, C.MONITORING_GAP, Severity.HIGH,
    monitoring_gap, gone="the account is no longer polled", after_change=False,
)  # fmt: skip
HANDOVER_BLOCKED = StandingCheck(
    "handover_blocked", "R4", Watches.LEAVERS, C.TWO_ADMINS, Severity.HIGH, handover_blocked,
    after_change=False,
)  # fmt: skip

LOGIN_REFUSED = StandingCheck(
    "connector_auth", "R1", Watches.LOGINS, C.CONNECTOR_AUTH, Severity.HIGH, login_refused,
    after_change=False,
)  # fmt: skip
CLASSIFIER_DOWN = StandingCheck(
    "classifier_down", "R1", Watches.MODEL, C.CLASSIFIER_DOWN, Severity.MEDIUM, classifier_down,
    after_change=False,
)  # fmt: skip

# Reconciled over every subject they watch, in this order, on every run and after a change.
STANDING_CHECKS: tuple[StandingCheck, ...] = (
    TWO_ADMINS,
    SCHOOL_WITHOUT_DSL,
    ACCOUNT_REGISTER,
    MONITORING_GAP,
)

# Reconciled with the facts the worker reports: a poll's login, the model after assessing.
REPORTED_CHECKS: tuple[StandingCheck, ...] = (LOGIN_REFUSED, CLASSIFIER_DOWN)
