"""The policy engine: pure decisions from facts and a clock reading passed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from connectors.base import GONE_VISIBILITIES, Visibility
from monitor.clock import require_aware
from monitor.constants import (
    SEVERITY_ORDER,
    ActionKind,
    CaseState,
    Category,
    ItemKind,
    Role,
    Severity,
)
from monitor.rules.handling import (
    DueCalendar,
    HandlingClock,
    HandlingTargets,
    handling_clock,
    needs_handling,
)
from monitor.rules.redaction import PERSONAL_DATA_WORDS
from monitor.rules.routing import CATEGORY_PRIORITY, ROUTES
from monitor.rules.threats import raised_categories

MENTION_STREAM = "mentions"  # public search results, not addressed to the school


@dataclass(frozen=True)
class ItemFacts:
    """What the engine knows about one assessed item."""

    item_id: int
    account_key: str
    kind: ItemKind
    stream: str
    is_own: bool
    posted_at: datetime
    seen_at: datetime
    categories: frozenset[Category]
    severity: Severity
    scores: Mapping[str, float] = field(default_factory=dict)
    rule_ids: frozenset[str] = frozenset()  # the rules that fired
    text: str = ""


@dataclass(frozen=True)
class ItemPolicy:
    """The configured policy the engine applies to items."""

    calendar: DueCalendar
    within: timedelta
    reminder_before: timedelta
    auto_hide_enabled: bool = False
    auto_hide_dry_run: bool = True
    auto_hide_thresholds: Mapping[Category, float] = field(default_factory=dict)
    handling: HandlingTargets = field(default_factory=HandlingTargets)  # R8


@dataclass(frozen=True)
class CaseDecision:
    """A case to open (idempotently, by ``dedupe_key``)."""

    dedupe_key: str
    category: Category
    categories: frozenset[Category]
    severity: Severity
    restricted: bool
    urgent: bool
    police_step: bool
    due_at: datetime | None
    remind_at: datetime | None
    title: str
    auto_action: ActionKind | None = None
    auto_action_dry_run: bool = True
    handling: HandlingClock | None = None  # R8: abuse and threats on the school's own account


TITLES: dict[Category, str] = {
    Category.SAFEGUARDING: "Safeguarding concern",
    Category.THREAT: "Threat or intimidation",
    Category.PERSONAL_DATA: "Personal data exposed",
    Category.ABUSIVE: "Abusive comment",
    Category.MEDIA_ENQUIRY: "Media enquiry",
    Category.NEGATIVE_MENTION: "Negative public mention",
    Category.NEEDS_RESPONSE: "Query needing a response",
}
MINIMUM_SEVERITY: dict[Category, Severity] = {
    Category.SAFEGUARDING: Severity.HIGH,
    Category.THREAT: Severity.HIGH,
    Category.PERSONAL_DATA: Severity.MEDIUM,
    Category.ABUSIVE: Severity.MEDIUM,
}


def max_severity(*values: Severity) -> Severity:
    """The most serious of ``values``."""
    return max(values, key=SEVERITY_ORDER.__getitem__)


# R10: the rules that fire only when the school or its staff are the subject (named in the
# text, or insulted as staff); NEG-GENERAL's words alone ("chaos", "would not recommend")
# and the concern model's MODEL-NEGATIVE-MENTION name no subject, so a public mention that
# has only those is not about the school.
NEGATIVE_SUBJECT_RULES: frozenset[str] = frozenset(
    {
        "NEG-SCHOOL",
        "NEG-ABOUT-SCHOOL",
        "NEG-STAFF-ABUSE",
        "SCHOOL-NEGATIVE-MENTION",
        "MODEL-NEGATIVE-ABOUT-SCHOOL",
    }
)
# R11, R12: a journalist gives their own phone number and email address to be called back;
# in a media enquiry these alone are not a personal-data case (an address or a pupil's
# name still is).
CONTACT_DETAIL_RULES: frozenset[str] = frozenset({"PD-PHONE", "PD-EMAIL"})


def own_contact_details_only(categories: frozenset[Category], rule_ids: frozenset[str]) -> bool:
    """True for a media enquiry whose only personal data is a phone number or email address."""
    found = rule_ids & frozenset(PERSONAL_DATA_WORDS)
    return (
        Category.MEDIA_ENQUIRY in categories
        and Category.PERSONAL_DATA in categories
        and bool(found)
        and found <= CONTACT_DETAIL_RULES
    )


def relevant_categories(facts: ItemFacts) -> frozenset[Category]:
    """The categories that matter for where the item was seen."""
    if facts.is_own:
        return facts.categories & {Category.PERSONAL_DATA}  # R12 on the school's own posts
    # R9: violence filed as safeguarding that threatens people or the school is a threat too
    relevant = set(raised_categories(facts.categories, rule_ids=facts.rule_ids, text=facts.text))
    public_mention = facts.stream == MENTION_STREAM
    if not public_mention or not facts.rule_ids & NEGATIVE_SUBJECT_RULES:
        # R10 is about public postings with the school or its staff as the subject
        relevant.discard(Category.NEGATIVE_MENTION)
    if own_contact_details_only(facts.categories, facts.rule_ids):
        relevant.discard(Category.PERSONAL_DATA)  # a journalist's own number or address
    return frozenset(relevant)


def confidence(category: Category, scores: Mapping[str, float]) -> float:
    """How sure the model is of ``category`` (rule-only categories count as certain)."""
    if category is Category.ABUSIVE:
        return max(scores.values(), default=0.0)
    if category is Category.THREAT:
        return scores.get("threat", 1.0)
    return 1.0


def decide_for_item(facts: ItemFacts, policy: ItemPolicy) -> CaseDecision | None:
    """The case an item opens, if any: one per item, its category the most serious one."""
    categories = relevant_categories(facts)
    if not categories:
        return None
    category = next(c for c in CATEGORY_PRIORITY if c in categories)
    routes = [ROUTES[c] for c in categories]
    addressed = facts.stream != MENTION_STREAM and not facts.is_own
    due_at = remind_at = None
    if addressed and any(r.response_due for r in routes):
        received = min(require_aware(facts.posted_at), require_aware(facts.seen_at))
        due_at = policy.calendar.due_at(received, within=policy.within)
        remind_at = policy.calendar.reminder_at(due_at, received, before=policy.reminder_before)
    severity = max_severity(
        facts.severity, *(MINIMUM_SEVERITY.get(c, Severity.LOW) for c in categories)
    )
    handling = None
    if needs_handling(categories, addressed=addressed):
        handling = handling_clock(
            detected=require_aware(facts.seen_at), calendar=policy.calendar, targets=policy.handling
        )
    auto_action = None
    if policy.auto_hide_enabled and facts.kind is ItemKind.REPLY and not facts.is_own:
        for auto_category, threshold in policy.auto_hide_thresholds.items():
            if auto_category in categories and confidence(auto_category, facts.scores) >= threshold:
                auto_action = ActionKind.HIDE
    return CaseDecision(
        dedupe_key=f"item:{facts.item_id}",
        category=category,
        categories=categories,
        severity=severity,
        restricted=any(r.restricted for r in routes),
        urgent=any(r.urgent for r in routes),
        police_step=any(r.police_step for r in routes),
        due_at=due_at,
        remind_at=remind_at,
        title=f"{TITLES[category]} on {facts.account_key}",
        auto_action=auto_action,
        auto_action_dry_run=policy.auto_hide_dry_run,
        handling=handling,
    )


# ------------------------------------------------------------- response clock (R2)


class ClockStep(StrEnum):
    """What the response clock asks for now."""

    NONE = "none"
    REMIND = "remind"
    BREACH = "breach"


def clock_step(
    *,
    due_at: datetime | None,
    remind_at: datetime | None,
    reminded: bool,
    breached: bool,
    now: datetime,
    responded: bool = False,
) -> ClockStep:
    """Remind before the due time, escalate at the breach; each once; nothing once answered."""
    if due_at is None or responded:
        return ClockStep.NONE
    if now >= due_at and not breached:
        return ClockStep.BREACH
    if remind_at is not None and now >= remind_at and not reminded and now < due_at:
        return ClockStep.REMIND
    return ClockStep.NONE


# An answered case stays open this long for a follow-up in the same thread, then closes, so
# that it leaves the records the retention policy counts (R14) instead of staying for ever.
RESPONDED_SETTLE_AFTER = timedelta(days=14)


def responded_case_settles(
    *, state: CaseState, responded_at: datetime | None, now: datetime
) -> bool:
    """True when an answered case has waited long enough to close."""
    return (
        state is CaseState.RESPONDED
        and responded_at is not None
        and now - responded_at >= RESPONDED_SETTLE_AFTER
    )


# ------------------------------------------------------------- monitoring gaps (R1)


def in_monitoring_gap(
    *, last_success: datetime | None, watched_since: datetime, gap_limit: timedelta, now: datetime
) -> bool:
    """True when an account has gone longer than its limit without a successful check."""
    reference = last_success or watched_since
    return now - reference > gap_limit


# ------------------------------------------------------------- two administrators (R3)

MIN_ADMINS = 2


def two_admin_problem(active_admins: Iterable[str]) -> str | None:
    """Why an account breaks R3, or None when it has enough active administrators."""
    count = len(set(active_admins))
    if count >= MIN_ADMINS:
        return None
    return f"has {count} active administrator{'s' if count != 1 else ''}; policy needs at least {MIN_ADMINS}"


# ------------------------------------------------------------- a DSL in post (R6)


def dsl_problem(*, enabled_accounts: int, dsls_in_post: Iterable[str]) -> str | None:
    """Why a school breaks R6's standing rule (watched, yet no DSL or deputy in post), or None."""
    if enabled_accounts < 1 or set(dsls_in_post):
        return None
    return (
        "has no DSL or deputy DSL in post: its safeguarding alerts go to the principal "
        "(or SLT) instead"
    )


# ------------------------------------------------------------- account register (R13)


# R13: what an account's register entry must record (its configuration field, what is missing)
REGISTER_FIELDS: tuple[tuple[str, str], ...] = (
    ("approved_by", "no approving senior leader"),
    ("linked_email", "no linked school email"),
)


def register_gaps(*, approved_by: object, linked_email: object) -> list[tuple[str, str]]:
    """R13: the register fields an account lacks, as (field, what is missing)."""
    given = {"approved_by": approved_by, "linked_email": linked_email}
    return [(name, missing) for name, missing in REGISTER_FIELDS if not given[name]]


# R13: who may approve an account: a senior leader or the principal
APPROVER_ROLES: frozenset[Role] = frozenset({Role.SLT, Role.PRINCIPAL})


def approver_refusal(approver: str, roles: Iterable[Role]) -> str | None:
    """Why ``approver`` (with ``roles``) cannot approve an account, or None."""
    if APPROVER_ROLES & frozenset(roles):
        return None
    needed = " or ".join(sorted(r.value for r in APPROVER_ROLES))
    return f"{approver!r} cannot approve an account: the approver must be {needed} (R13)"


def linked_email_refusal(email: str, *, school: str, domains: Iterable[str]) -> str | None:
    """Why ``email`` is not one of ``school``'s addresses (its ``email_domains``), or None.

    A school with no domains configured is not checked. A subdomain of a configured domain
    counts (``office@mail.oak.sch.uk`` for ``oak.sch.uk``).
    """
    allowed = [d.lower().lstrip("@").strip(".") for d in domains if d.strip()]
    if not allowed:
        return None
    domain = email.rpartition("@")[2].lower().strip(".")
    if any(domain == d or domain.endswith("." + d) for d in allowed):
        return None
    return (
        f"linked email {email!r} is not a {school} address "
        f"(its email_domains: {', '.join(allowed)}) (R13)"
    )


def register_problems(*, approved_by: str | None, linked_email: str | None) -> list[str]:
    """What an account lacks to be compliant with R13."""
    gaps = register_gaps(approved_by=approved_by, linked_email=linked_email)
    return [f"{missing} recorded" for _, missing in gaps]


# ------------------------------------------------------------- leavers (R4)

LEAVER_WARNING_DAYS: tuple[int, ...] = (14, 7, 1)


def in_post(*, active: bool, leaving_on: date | None, today: date) -> bool:
    """Whether a member of staff still counts (R3, R4): active and not past their last day."""
    # ``today`` is the school's local date. A leaver whose handover was blocked is still
    # marked active, but from the day after their leaving date they have gone.
    return active and (leaving_on is None or today <= leaving_on)


def leaver_warning_due(*, leaving_on: date, today: date) -> int | None:
    """The warning (days before leaving) due today, if any."""
    days = (leaving_on - today).days
    return days if days in LEAVER_WARNING_DAYS else None


@dataclass(frozen=True)
class HandoverPlan:
    """What a handover would do to one account."""

    account_key: str
    remaining: frozenset[str]
    added: str | None
    refused: str | None


def plan_handover(
    *,
    account_key: str,
    admins: frozenset[str],
    leaver: str,
    successor: str | None,
    active: frozenset[str],
) -> HandoverPlan:
    """Hand ``leaver``'s role on an account to ``successor``; refuse if under two would remain."""
    remaining = frozenset(a for a in admins if a != leaver and a in active)
    added = successor if successor and successor not in remaining and successor != leaver else None
    after = remaining | ({added} if added else set())
    refused = None
    # R4: refused unless a replacement is named. A named successor who takes the role over
    # is never refused: blocking them would leave the leaver in charge of the account. If
    # the account was already short, the R3 re-check that follows the handover reports it.
    if len(after) < MIN_ADMINS and added is None:
        if successor and successor in remaining:
            hint = f"{successor} already administers it; name another successor"
        else:
            hint = "name a successor (--successor STAFF_ID) or add an administrator first"
        refused = f"{account_key} would be left with {len(after)} active administrator(s); {hint}"
    return HandoverPlan(account_key, remaining, added, refused)


# ------------------------------------------------------------- removal verification (R8)


class VerifyOutcome(StrEnum):
    """What a removal check concluded."""

    CONFIRMED = "confirmed"  # no longer visible
    PENDING = "pending"  # still visible, check again later
    OVERDUE = "overdue"  # still visible at the final check: escalate


def verify_outcome(visibility: Visibility, *, is_final: bool) -> VerifyOutcome:
    """Judge a re-fetch after a hide/remove/report."""
    if visibility is Visibility.HIDDEN or visibility in GONE_VISIBILITIES:
        return VerifyOutcome.CONFIRMED
    return VerifyOutcome.OVERDUE if is_final else VerifyOutcome.PENDING


def time_visible(*, posted_at: datetime, hidden_at: datetime) -> timedelta:
    """How long the item was publicly visible (R8, R15)."""
    return max(timedelta(0), require_aware(hidden_at) - require_aware(posted_at))
