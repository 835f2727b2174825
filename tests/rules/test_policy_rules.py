"""Table tests for every policy rule: routing, permissions, the engine's decisions and checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from connectors.base import Visibility
from monitor.calendar import WorkingCalendar
from monitor.config_models import Routing, SchoolChannels
from monitor.constants import (
    ActionKind,
    AlertChannel,
    CaseState,
    Category,
    ItemKind,
    Role,
    Severity,
)
from monitor.directory import Directory, Person
from monitor.rules.alerting import Audience, plan_case_alerts
from monitor.rules.engine import (
    ClockStep,
    ItemFacts,
    ItemPolicy,
    VerifyOutcome,
    clock_step,
    decide_for_item,
    in_monitoring_gap,
    leaver_warning_due,
    plan_handover,
    register_problems,
    time_visible,
    two_admin_problem,
    verify_outcome,
)
from monitor.rules.permissions import refusal
from monitor.rules.routing import ROUTES

C = Category
R = Role
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
POLICY = ItemPolicy(
    calendar=WorkingCalendar(), within=timedelta(hours=24), reminder_before=timedelta(hours=4)
)


def facts(
    *categories: Category,
    stream: str = "replies",
    is_own: bool = False,
    kind: ItemKind = ItemKind.REPLY,
    at: datetime = MONDAY,
    scores: dict[str, float] | None = None,
) -> ItemFacts:
    return ItemFacts(
        item_id=7,
        account_key="oak-bsky",
        kind=kind,
        stream=stream,
        is_own=is_own,
        posted_at=at,
        seen_at=at + timedelta(minutes=3),
        categories=frozenset(categories),
        severity=Severity.LOW,
        scores=scores or {},
    )


# ---------------------------------------------------------------- routing rows

ROUTING_TABLE = [
    # category, who hears, urgent, restricted, response clock, police step
    (C.SAFEGUARDING, {R.DSL, R.DEPUTY_DSL}, True, True, False, False),
    (C.THREAT, {R.DSL, R.DEPUTY_DSL, R.SLT, R.PRINCIPAL}, True, False, False, True),
    (C.MEDIA_ENQUIRY, {R.PRINCIPAL}, False, False, True, False),
    (C.ABUSIVE, {R.MODERATOR}, False, False, False, False),
    (C.NEGATIVE_MENTION, {R.COMMS, R.PRINCIPAL}, False, False, False, False),
    (C.PERSONAL_DATA, {R.MODERATOR, R.DSL, R.DEPUTY_DSL}, True, False, False, False),
    (C.NEEDS_RESPONSE, {R.COMMS}, False, False, True, False),
    (C.MONITORING_GAP, {R.IT_ADMIN}, False, False, False, False),
    (C.TWO_ADMINS, {R.SLT, R.PRINCIPAL}, False, False, False, False),
    (C.CREDENTIAL_ROTATION, {R.IT_ADMIN}, False, False, False, False),
]


@pytest.mark.parametrize(
    ("category", "roles", "urgent", "restricted", "due", "police"), ROUTING_TABLE
)
def test_routing_rows(
    category: Category, roles: set[Role], urgent: bool, restricted: bool, due: bool, police: bool
) -> None:
    route = ROUTES[category]
    assert (
        set(route.roles),
        route.urgent,
        route.restricted,
        route.response_due,
        route.police_step,
    ) == (roles, urgent, restricted, due, police)


def test_every_category_has_a_route() -> None:
    assert set(ROUTES) == set(Category)


# ---------------------------------------------------------------- item decisions

DECISIONS = [
    # categories, stream, is_own -> case category, restricted, urgent, police, due?
    ((C.SAFEGUARDING, C.ABUSIVE), "replies", False, C.SAFEGUARDING, True, True, False, False),
    ((C.THREAT, C.NEEDS_RESPONSE), "notifications", False, C.THREAT, False, True, True, True),
    ((C.MEDIA_ENQUIRY,), "notifications", False, C.MEDIA_ENQUIRY, False, False, False, True),
    ((C.MEDIA_ENQUIRY,), "mentions", False, C.MEDIA_ENQUIRY, False, False, False, False),
    ((C.ABUSIVE,), "replies", False, C.ABUSIVE, False, False, False, False),
    ((C.NEGATIVE_MENTION,), "mentions", False, C.NEGATIVE_MENTION, False, False, False, False),
    (
        (C.PERSONAL_DATA, C.NEEDS_RESPONSE),
        "replies",
        False,
        C.PERSONAL_DATA,
        False,
        True,
        False,
        True,
    ),
    ((C.NEEDS_RESPONSE,), "replies", False, C.NEEDS_RESPONSE, False, False, False, True),
    ((C.PERSONAL_DATA,), "posts", True, C.PERSONAL_DATA, False, True, False, False),
]


@pytest.mark.parametrize(
    ("categories", "stream", "own", "category", "restricted", "urgent", "police", "due"), DECISIONS
)
def test_item_decisions(
    categories: tuple[Category, ...],
    stream: str,
    own: bool,
    category: Category,
    restricted: bool,
    urgent: bool,
    police: bool,
    due: bool,
) -> None:
    decision = decide_for_item(facts(*categories, stream=stream, is_own=own), POLICY)
    assert decision is not None
    assert (decision.category, decision.restricted, decision.urgent, decision.police_step) == (
        category,
        restricted,
        urgent,
        police,
    )
    assert (decision.due_at is not None) is due
    assert decision.dedupe_key == "item:7"
    assert "on oak-bsky" in decision.title


@pytest.mark.parametrize(
    ("categories", "stream", "own"),
    [
        ((), "replies", False),
        ((C.NEGATIVE_MENTION,), "replies", False),
        ((C.ABUSIVE, C.NEEDS_RESPONSE), "posts", True),
    ],
)
def test_items_that_open_nothing(categories: tuple[Category, ...], stream: str, own: bool) -> None:
    assert decide_for_item(facts(*categories, stream=stream, is_own=own), POLICY) is None


def test_due_times_follow_the_working_calendar() -> None:
    weekday = decide_for_item(facts(C.NEEDS_RESPONSE, at=MONDAY), POLICY)
    weekend = decide_for_item(facts(C.NEEDS_RESPONSE, at=SATURDAY), POLICY)
    assert weekday is not None and weekend is not None
    assert weekday.due_at == MONDAY + timedelta(hours=24)
    assert weekday.remind_at == MONDAY + timedelta(hours=20)
    assert weekend.due_at == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # Monday 17:00 GMT


def test_severity_floor_for_serious_categories() -> None:
    decision = decide_for_item(facts(C.SAFEGUARDING), POLICY)
    assert decision is not None and decision.severity == Severity.HIGH


@pytest.mark.parametrize(
    ("enabled", "score", "kind", "expected"),
    [
        (True, 0.97, ItemKind.REPLY, ActionKind.HIDE),
        (True, 0.90, ItemKind.REPLY, None),
        (False, 0.99, ItemKind.REPLY, None),
        (True, 0.99, ItemKind.MENTION, None),
    ],
)
def test_auto_hide_threshold(
    enabled: bool, score: float, kind: ItemKind, expected: ActionKind | None
) -> None:
    policy = ItemPolicy(
        calendar=WorkingCalendar(),
        within=timedelta(hours=24),
        reminder_before=timedelta(hours=4),
        auto_hide_enabled=enabled,
        auto_hide_thresholds={C.ABUSIVE: 0.95},
    )
    decision = decide_for_item(
        facts(C.ABUSIVE, kind=kind, scores={"toxicity": score, "insult": 0.2}), policy
    )
    assert decision is not None and decision.auto_action == expected
    assert decision.auto_action_dry_run is True


# ---------------------------------------------------------------- permissions

PERMISSIONS = [
    # roles, action, category, restricted, state -> allowed
    ({R.MODERATOR}, ActionKind.HIDE, C.ABUSIVE, False, CaseState.NEW, True),
    ({R.IT_ADMIN}, ActionKind.HIDE, C.ABUSIVE, False, CaseState.NEW, False),
    ({R.MODERATOR}, ActionKind.HIDE, C.SAFEGUARDING, True, CaseState.NEW, False),
    ({R.DSL}, ActionKind.HIDE, C.SAFEGUARDING, True, CaseState.NEW, True),
    ({R.MODERATOR}, ActionKind.REPLY, C.NEEDS_RESPONSE, False, CaseState.NEW, False),
    ({R.COMMS}, ActionKind.REPLY, C.NEEDS_RESPONSE, False, CaseState.NEW, True),
    ({R.COMMS}, ActionKind.ACKNOWLEDGE, C.NEEDS_RESPONSE, False, CaseState.CLOSED, False),
    ({R.IT_ADMIN}, ActionKind.CLOSE, C.MONITORING_GAP, False, CaseState.NEW, True),
    ({R.IT_ADMIN}, ActionKind.DISMISS, C.ABUSIVE, False, CaseState.NEW, False),
    ({R.MODERATOR}, ActionKind.DISMISS, C.ABUSIVE, False, CaseState.RESPONDED, False),
    ({R.SLT}, ActionKind.ESCALATE, C.ABUSIVE, False, CaseState.ACKNOWLEDGED, True),
]


@pytest.mark.parametrize(
    ("roles", "action", "category", "restricted", "state", "allowed"), PERMISSIONS
)
def test_permissions(
    roles: set[Role],
    action: ActionKind,
    category: Category,
    restricted: bool,
    state: CaseState,
    allowed: bool,
) -> None:
    why = refusal(roles, action, category=category, restricted=restricted, state=state)
    assert (why is None) is allowed, why


# ---------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("due", "remind", "reminded", "breached", "now", "step"),
    [
        (None, None, False, False, MONDAY, ClockStep.NONE),
        (
            MONDAY,
            MONDAY - timedelta(hours=4),
            False,
            False,
            MONDAY - timedelta(hours=5),
            ClockStep.NONE,
        ),
        (
            MONDAY,
            MONDAY - timedelta(hours=4),
            False,
            False,
            MONDAY - timedelta(hours=1),
            ClockStep.REMIND,
        ),
        (
            MONDAY,
            MONDAY - timedelta(hours=4),
            True,
            False,
            MONDAY - timedelta(hours=1),
            ClockStep.NONE,
        ),
        (MONDAY, MONDAY - timedelta(hours=4), True, False, MONDAY, ClockStep.BREACH),
        (MONDAY, None, False, False, MONDAY + timedelta(days=1), ClockStep.BREACH),
        (MONDAY, None, False, True, MONDAY + timedelta(days=1), ClockStep.NONE),
    ],
)
def test_response_clock(
    due: datetime | None,
    remind: datetime | None,
    reminded: bool,
    breached: bool,
    now: datetime,
    step: ClockStep,
) -> None:
    assert (
        clock_step(due_at=due, remind_at=remind, reminded=reminded, breached=breached, now=now)
        is step
    )


@pytest.mark.parametrize(
    ("last", "minutes_later", "gap"),
    [(MONDAY, 29, False), (MONDAY, 31, True), (None, 10, False), (None, 45, True)],
)
def test_monitoring_gap(last: datetime | None, minutes_later: int, gap: bool) -> None:
    now = MONDAY + timedelta(minutes=minutes_later)
    assert (
        in_monitoring_gap(
            last_success=last, watched_since=MONDAY, gap_limit=timedelta(minutes=30), now=now
        )
        is gap
    )


@pytest.mark.parametrize(
    ("admins", "ok"),
    [
        ((), False),
        (("a",), False),
        (("a", "a"), False),
        (("a", "b"), True),
        (("a", "b", "c"), True),
    ],
)
def test_two_admins(admins: tuple[str, ...], ok: bool) -> None:
    assert (two_admin_problem(admins) is None) is ok


@pytest.mark.parametrize(
    ("approved", "email", "count"),
    [
        ("head", "office@x.sch.uk", 0),
        (None, "office@x.sch.uk", 1),
        ("head", None, 1),
        (None, None, 2),
    ],
)
def test_register(approved: str | None, email: str | None, count: int) -> None:
    assert len(register_problems(approved_by=approved, linked_email=email)) == count


@pytest.mark.parametrize(
    ("days_before", "warning"), [(15, None), (14, 14), (8, None), (7, 7), (1, 1), (0, None)]
)
def test_leaver_warnings(days_before: int, warning: int | None) -> None:
    leaving = date(2027, 7, 22)
    assert (
        leaver_warning_due(leaving_on=leaving, today=leaving - timedelta(days=days_before))
        == warning
    )


HANDOVERS = [
    # admins, successor, active -> remaining, added, refused?
    ({"leaver", "b", "c"}, None, {"b", "c"}, {"b", "c"}, None, False),
    ({"leaver", "b"}, None, {"b"}, {"b"}, None, True),
    ({"leaver", "b"}, "s", {"b", "s"}, {"b"}, "s", False),
    ({"leaver", "b"}, "b", {"b"}, {"b"}, None, True),
    ({"leaver", "b", "gone"}, None, {"b"}, {"b"}, None, True),
]


@pytest.mark.parametrize(
    ("admins", "successor", "active", "remaining", "added", "refused"), HANDOVERS
)
def test_handover_plans(
    admins: set[str],
    successor: str | None,
    active: set[str],
    remaining: set[str],
    added: str | None,
    refused: bool,
) -> None:
    plan = plan_handover(
        account_key="acc",
        admins=frozenset(admins),
        leaver="leaver",
        successor=successor,
        active=frozenset(active),
    )
    assert (set(plan.remaining), plan.added, plan.refused is not None) == (
        remaining,
        added,
        refused,
    )


@pytest.mark.parametrize(
    ("visibility", "final", "outcome"),
    [
        (Visibility.HIDDEN, False, VerifyOutcome.CONFIRMED),
        (Visibility.REMOVED, True, VerifyOutcome.CONFIRMED),
        (Visibility.DELETED, False, VerifyOutcome.CONFIRMED),
        (Visibility.NOT_FOUND, True, VerifyOutcome.CONFIRMED),
        (Visibility.VISIBLE, False, VerifyOutcome.PENDING),
        (Visibility.VISIBLE, True, VerifyOutcome.OVERDUE),
    ],
)
def test_removal_verification(visibility: Visibility, final: bool, outcome: VerifyOutcome) -> None:
    assert verify_outcome(visibility, is_final=final) is outcome


def test_time_visible_is_never_negative() -> None:
    assert time_visible(posted_at=MONDAY, hidden_at=MONDAY + timedelta(minutes=42)) == timedelta(
        minutes=42
    )
    assert time_visible(posted_at=MONDAY, hidden_at=MONDAY - timedelta(minutes=1)) == timedelta(0)


# ---------------------------------------------------------------- who is told

PEOPLE = (
    Person("dsl", "Dee", "dsl@s.uk", "UDSL", frozenset({R.DSL}), frozenset({"oak"})),
    Person("mod", "Mo", "mod@s.uk", "UMOD", frozenset({R.MODERATOR}), frozenset({"oak"})),
    Person("elm-mod", "Em", "em@s.uk", "UEM", frozenset({R.MODERATOR}), frozenset({"elm"})),
    Person("head", "Hd", "head@s.uk", None, frozenset({R.PRINCIPAL, R.SLT}), frozenset()),
    Person("it", "Ivy", "it@s.uk", "UIT", frozenset({R.IT_ADMIN}), frozenset()),
)
ROUTING = Routing(
    slack_default_channel="#all",
    slack_it_channel="#it",
    schools={"oak": SchoolChannels(default="#oak", by_category={C.ABUSIVE: "#oak-mod"})},
)
DIRECTORY = Directory(PEOPLE, ROUTING)


def targets(plans: list) -> set[tuple[str, str, str]]:  # type: ignore[type-arg]
    return {(p.channel.value, p.target, p.audience.value) for p in plans}


def test_safeguarding_goes_to_the_dsl_and_the_channel_sees_only_a_note() -> None:
    plans = plan_case_alerts(
        DIRECTORY,
        category=C.SAFEGUARDING,
        categories=frozenset({C.SAFEGUARDING, C.ABUSIVE}),
        school_key="oak",
        restricted=True,
        urgent=True,
    )
    assert targets(plans) == {
        ("slack", "#oak", Audience.RESTRICTED_NOTE.value),
        ("slack", "UDSL", "full"),
        ("email", "dsl@s.uk", "full"),
    }
    assert all(p.urgent for p in plans)


def test_abusive_goes_to_the_schools_moderation_channel_only() -> None:
    plans = plan_case_alerts(
        DIRECTORY,
        category=C.ABUSIVE,
        categories=frozenset({C.ABUSIVE}),
        school_key="oak",
        restricted=False,
        urgent=False,
    )
    assert targets(plans) == {("slack", "#oak-mod", "full")}


def test_threat_reaches_dsl_and_leaders_directly() -> None:
    plans = plan_case_alerts(
        DIRECTORY,
        category=C.THREAT,
        categories=frozenset({C.THREAT}),
        school_key="oak",
        restricted=False,
        urgent=True,
    )
    assert ("email", "head@s.uk", "full") in targets(plans)
    assert ("slack", "UDSL", "full") in targets(plans)
    assert not any(t[1] in {"UEM", "em@s.uk"} for t in targets(plans))  # another school's staff


def test_operational_cases_go_to_it() -> None:
    plans = plan_case_alerts(
        DIRECTORY,
        category=C.MONITORING_GAP,
        categories=frozenset({C.MONITORING_GAP}),
        school_key="oak",
        restricted=False,
        urgent=False,
    )
    assert targets(plans) == {
        ("slack", "#it", "full"),
        ("slack", "UIT", "full"),
        ("email", "it@s.uk", "full"),
    }


def test_routing_overrides_name_the_dsl() -> None:
    directory = Directory(PEOPLE, ROUTING.model_copy(update={"dsl": ["head"]}))
    plans = plan_case_alerts(
        directory,
        category=C.SAFEGUARDING,
        categories=frozenset({C.SAFEGUARDING}),
        school_key="oak",
        restricted=True,
        urgent=True,
    )
    assert {t[1] for t in targets(plans)} == {"#oak", "head@s.uk"}


def test_alert_channel_enum_values_are_stable() -> None:
    assert {c.value for c in AlertChannel} == {"slack", "email"}
    assert time(17, 0) == WorkingCalendar().end_of_day
