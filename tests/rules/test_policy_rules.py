"""Table tests for every policy rule: routing, permissions, the engine's decisions and checks."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from connectors.base import Visibility
from monitor.calendar import WorkingCalendar
from monitor.config import load_config
from monitor.config_models import AutoHide, Classifier, Routing, SchoolChannels
from monitor.constants import (
    ActionKind,
    AlertChannel,
    CaseState,
    Category,
    ExportKind,
    ItemKind,
    Role,
    Severity,
)
from monitor.digest.render import CATEGORY_LABELS
from monitor.directory import Directory, Person
from monitor.policy import item_policy
from monitor.rules.alerting import Audience, plan_case_alerts
from monitor.rules.engine import (
    ClockStep,
    ItemFacts,
    ItemPolicy,
    VerifyOutcome,
    clock_step,
    decide_for_item,
    dsl_problem,
    in_monitoring_gap,
    in_post,
    leaver_warning_due,
    plan_handover,
    register_problems,
    responded_case_settles,
    time_visible,
    two_admin_problem,
    verify_outcome,
)
from monitor.rules.permissions import (
    ACTION_ROLES,
    EXPORT_ROLES,
    STATE_AFTER,
    assignee_refusal,
    evidence_export_kind,
    export_refusal,
    refusal,
)
from monitor.rules.routing import NO_DSL_STAND_INS, ROUTES, case_holder, is_urgent
from tests.conftest import EXAMPLE_CONFIG, REPO

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
    rule_ids: set[str] | None = None,
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
        rule_ids=frozenset(
            rule_ids if rule_ids is not None else {RULE_OF[c] for c in categories if c in RULE_OF}
        ),
    )


# the rule that typically raises a category (the facts above name it unless told otherwise)
RULE_OF = {C.NEGATIVE_MENTION: "NEG-SCHOOL", C.PERSONAL_DATA: "PD-ADDRESS"}


# ---------------------------------------------------------------- routing rows, as behaviour

# One member of staff per role at Oak (and a moderator at Elm, who is never told of Oak's cases).
EVERYONE = Directory(
    tuple(
        Person(key, key.title(), f"{key}@s.uk", f"U{key}", frozenset({role}), frozenset(schools))
        for key, role, schools in (
            ("comms", R.COMMS, {"oak"}),
            ("mod", R.MODERATOR, {"oak"}),
            ("dsl", R.DSL, {"oak"}),
            ("deputy", R.DEPUTY_DSL, {"oak"}),
            ("head", R.PRINCIPAL, {"oak"}),
            ("slt", R.SLT, {"oak"}),
            ("it", R.IT_ADMIN, set()),
            ("elmmod", R.MODERATOR, {"elm"}),
        )
    ),
    Routing(
        slack_default_channel="#all",
        slack_it_channel="#it",
        schools={"oak": SchoolChannels(default="#oak")},
    ),
    now=MONDAY,
)
ITEM = "item"  # opened by an item (the engine decides it) ...
CHECK = "check"  # ... or by a standing check (never restricted)
NOTE = "restricted_note"
ROUTING_TABLE = [
    # category, opened by -> the channel post, told directly, told once urgent or escalated,
    # urgent, (for items) the response clock runs, a police step
    (C.SAFEGUARDING, ITEM, ("#oak", NOTE), "dsl deputy", "dsl deputy", True, False, False),
    (C.THREAT, ITEM, ("#oak", "full"), "dsl deputy head slt", "dsl deputy head slt", True, False, True),
    # R12: the channel is told in words what was exposed; moderators and DSLs see it in full
    (C.PERSONAL_DATA, ITEM, ("#oak", "restricted_note"), "mod dsl deputy", "mod dsl deputy", True, False, False),
    (C.ABUSIVE, ITEM, ("#oak", "full"), "", "mod", False, False, False),
    # R11: the channel sees that one arrived and who holds it (the principal)
    (C.MEDIA_ENQUIRY, ITEM, ("#oak", NOTE), "head", "head", False, True, False),
    (C.NEGATIVE_MENTION, ITEM, ("#oak", "full"), "head", "comms head", False, False, False),
    (C.NEEDS_RESPONSE, ITEM, ("#oak", "full"), "", "comms", False, True, False),
    (C.MONITORING_GAP, CHECK, ("#it", "full"), "it", "it", False, None, None),
    (C.TWO_ADMINS, CHECK, None, "head slt", "head slt", False, None, None),
    (C.ACCOUNT_REGISTER, CHECK, None, "slt it", "slt it", False, None, None),
    (C.CREDENTIAL_ROTATION, CHECK, ("#it", "full"), "it", "it", False, None, None),
    (C.SAFEGUARDING_NO_DSL, CHECK, None, "head slt", "head slt", True, None, None),
    (C.SCHOOL_WITHOUT_DSL, CHECK, None, "head slt", "head slt", False, None, None),
    (C.REMOVAL_OVERDUE, CHECK, ("#oak", "full"), "mod dsl slt", "mod dsl slt", True, None, None),
    (C.CLASSIFIER_DOWN, CHECK, ("#it", "full"), "it", "it", False, None, None),
    (C.CONNECTOR_AUTH, CHECK, ("#it", "full"), "it", "it", False, None, None),
    (C.DELIVERY_FAILED, CHECK, ("#it", "full"), "it", "it", False, None, None),
    (C.ITEM_QUARANTINED, CHECK, ("#it", "full"), "it", "it", False, None, None),
]  # fmt: skip


def told(
    category: Category, *, restricted: bool, urgent: bool
) -> tuple[set[tuple[str, str]], set[str]]:
    """The channel posts and the people told directly (by DM and email) of an Oak case."""
    plans = plan_case_alerts(
        EVERYONE,
        category=category,
        categories=frozenset({category}),
        school_key="oak",
        restricted=restricted,
        urgent=urgent,
    )
    posts = {(p.target, p.audience.value) for p in plans if p.target.startswith("#")}
    direct = [p for p in plans if not p.target.startswith("#")]
    people = {p.target.split("@")[0].removeprefix("U") for p in direct}
    for person in people:  # told by both DM and email, always in full
        assert {(p.channel.value, p.audience.value) for p in direct if person in p.target} == {
            ("slack", "full"),
            ("email", "full"),
        }
    return posts, people


@pytest.mark.parametrize(
    ("category", "source", "channel", "direct", "at_once", "urgent", "due", "police"),
    ROUTING_TABLE,
)
def test_routing_rows(
    category: Category,
    source: str,
    channel: tuple[str, str] | None,
    direct: str,
    at_once: str,
    urgent: bool,
    due: bool | None,
    police: bool | None,
) -> None:
    restricted = False
    if source == ITEM:
        stream = "mentions" if category is C.NEGATIVE_MENTION else "replies"
        decision = decide_for_item(facts(category, stream=stream), POLICY)
        assert decision is not None and decision.category is category
        assert decision.urgent is urgent
        assert (decision.due_at is not None) is due
        assert decision.police_step is police
        restricted = decision.restricted
    assert is_urgent([category]) is urgent
    posts, people = told(category, restricted=restricted, urgent=urgent)
    assert posts == ({channel} if channel else set())
    assert people == set(direct.split())
    _, at_once_people = told(category, restricted=restricted, urgent=True)
    assert at_once_people == set(at_once.split())  # the route's roles; never Elm's moderator


def test_the_routing_rows_cover_every_category() -> None:
    categories = [row[0] for row in ROUTING_TABLE]
    assert len(categories) == len(set(categories)) and set(categories) == set(Category)


def test_every_category_has_a_route() -> None:
    assert set(ROUTES) == set(Category)


def test_only_safeguarding_and_threats_fall_back_from_an_absent_dsl() -> None:
    # R6 (and R9, whose threats also go to the DSL): the others keep their own routes
    assert {c for c, route in ROUTES.items() if route.dsl_fallback} == {C.SAFEGUARDING, C.THREAT}
    assert (frozenset({R.PRINCIPAL}), frozenset({R.SLT})) == NO_DSL_STAND_INS


def test_every_category_has_a_digest_label() -> None:
    assert set(CATEGORY_LABELS) == {c.value for c in Category}


def test_the_dsl_in_post_check_is_documented() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"`{C.SCHOOL_WITHOUT_DSL.value}`" in readme


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
    ("categories", "rule_ids", "case_category"),
    [
        # R10: a public mention is the principal's when the school or its staff are its subject
        ((C.NEGATIVE_MENTION,), {"NEG-SCHOOL"}, C.NEGATIVE_MENTION),
        ((C.NEGATIVE_MENTION,), {"NEG-GENERAL", "NEG-ABOUT-SCHOOL"}, C.NEGATIVE_MENTION),
        ((C.NEGATIVE_MENTION,), {"NEG-STAFF-ABUSE"}, C.NEGATIVE_MENTION),
        ((C.NEGATIVE_MENTION,), {"SCHOOL-NEGATIVE-MENTION"}, C.NEGATIVE_MENTION),
        # "the ring road was chaos" names no school or staff: nothing to tell anyone
        ((C.NEGATIVE_MENTION,), {"NEG-GENERAL"}, None),
        ((C.NEGATIVE_MENTION, C.NEEDS_RESPONSE), {"NEG-GENERAL", "NR-QUESTION"}, C.NEEDS_RESPONSE),
        # the concern model's complaint score: the same, by whether the text names a subject
        ((C.NEGATIVE_MENTION,), {"MODEL-NEGATIVE-ABOUT-SCHOOL"}, C.NEGATIVE_MENTION),
        ((C.NEGATIVE_MENTION,), {"MODEL-NEGATIVE-MENTION"}, None),
        # R11, R12: a journalist's own number and email do not make a personal-data case
        ((C.MEDIA_ENQUIRY, C.PERSONAL_DATA), {"MED-JOURNALIST", "PD-PHONE"}, C.MEDIA_ENQUIRY),
        (
            (C.MEDIA_ENQUIRY, C.PERSONAL_DATA),
            {"MED-JOURNALIST", "PD-PHONE", "PD-EMAIL"},
            C.MEDIA_ENQUIRY,
        ),
        # ... an address or a pupil's full name in it still does
        (
            (C.MEDIA_ENQUIRY, C.PERSONAL_DATA),
            {"MED-STORY", "PD-PHONE", "PD-ADDRESS"},
            C.PERSONAL_DATA,
        ),
        ((C.MEDIA_ENQUIRY, C.PERSONAL_DATA), {"MED-OUTLET", "PD-PUPIL-NAME"}, C.PERSONAL_DATA),
        # a phone number without a media enquiry is personal data
        ((C.PERSONAL_DATA,), {"PD-PHONE"}, C.PERSONAL_DATA),
    ],
)
def test_a_mention_needs_a_subject_and_a_journalists_details_are_theirs(
    categories: tuple[Category, ...], rule_ids: set[str], case_category: Category | None
) -> None:
    decision = decide_for_item(facts(*categories, stream="mentions", rule_ids=rule_ids), POLICY)
    assert (decision.category if decision else None) is case_category
    if decision is not None:
        assert (C.PERSONAL_DATA in decision.categories) is (case_category is C.PERSONAL_DATA)


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
    # R3/R13 standing problems close themselves once fixed, never by hand
    ({R.SLT}, ActionKind.CLOSE, C.TWO_ADMINS, False, CaseState.NEW, False),
    ({R.SLT}, ActionKind.DISMISS, C.ACCOUNT_REGISTER, False, CaseState.NEW, False),
    ({R.SLT}, ActionKind.ACKNOWLEDGE, C.TWO_ADMINS, False, CaseState.NEW, True),
    # R6: a school without a DSL in post stays a case until one is
    ({R.PRINCIPAL}, ActionKind.CLOSE, C.SCHOOL_WITHOUT_DSL, False, CaseState.NEW, False),
    ({R.SLT}, ActionKind.DISMISS, C.SCHOOL_WITHOUT_DSL, False, CaseState.ACKNOWLEDGED, False),
    ({R.SLT}, ActionKind.ACKNOWLEDGE, C.SCHOOL_WITHOUT_DSL, False, CaseState.NEW, True),
    ({R.IT_ADMIN}, ActionKind.CLOSE, C.CREDENTIAL_ROTATION, False, CaseState.NEW, True),
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


STAND_IN = [
    # roles, action, category, state, alerted in the DSL's place now -> refusal has (None: may)
    # R6: with no DSL or deputy in post, the principal (else SLT) acts on it as the DSL would
    ({R.PRINCIPAL, R.SLT}, ActionKind.HIDE, C.SAFEGUARDING, CaseState.NEW, True, None),
    ({R.PRINCIPAL}, ActionKind.ACKNOWLEDGE, C.SAFEGUARDING, CaseState.NEW, True, None),
    ({R.SLT}, ActionKind.ESCALATE, C.SAFEGUARDING, CaseState.ACKNOWLEDGED, True, None),
    ({R.SLT}, ActionKind.REMOVE, C.SAFEGUARDING, CaseState.ESCALATED, True, None),
    ({R.PRINCIPAL}, ActionKind.CLOSE, C.SAFEGUARDING, CaseState.ACTIONED, True, None),
    ({R.PRINCIPAL}, ActionKind.ASSIGN, C.SAFEGUARDING, CaseState.NEW, True, None),  # to a DSL
    # as the DSL would, no more: no public reply to a disclosure, whatever their own roles say
    ({R.PRINCIPAL, R.SLT}, ActionKind.REPLY, C.SAFEGUARDING, CaseState.NEW, True, "reply needs"),
    # an SLT member who is not the stand-in (a principal is in post), or a former stand-in
    # once a DSL is back in post: the safeguarding case is the DSL's again
    ({R.SLT}, ActionKind.HIDE, C.SAFEGUARDING, CaseState.NEW, False, "only the DSL"),
    ({R.PRINCIPAL, R.SLT}, ActionKind.ACKNOWLEDGE, C.SAFEGUARDING, CaseState.NEW, False, "DSL"),
    # standing in changes who may act, not the case's own rules
    ({R.PRINCIPAL}, ActionKind.ACKNOWLEDGE, C.SAFEGUARDING, CaseState.CLOSED, True, "closed"),
    ({R.SLT}, ActionKind.DISMISS, C.SAFEGUARDING, CaseState.RESPONDED, True, "cannot become"),
    # and only on a restricted case: elsewhere their own roles decide, as for anyone
    ({R.PRINCIPAL}, ActionKind.ACKNOWLEDGE, C.THREAT, CaseState.NEW, True, None),
    ({R.IT_ADMIN}, ActionKind.HIDE, C.ABUSIVE, CaseState.NEW, True, "hide needs one of these"),
]


@pytest.mark.parametrize(("roles", "action", "category", "state", "stand_in", "why"), STAND_IN)
def test_a_stand_in_acts_on_a_safeguarding_case_as_the_dsl_would(
    roles: set[Role],
    action: ActionKind,
    category: Category,
    state: CaseState,
    stand_in: bool,
    why: str | None,
) -> None:
    restricted = ROUTES[category].restricted
    got = refusal(
        roles, action, category=category, restricted=restricted, state=state, stand_in=stand_in
    )
    assert (got is None) if why is None else (got is not None and why in got), got


def test_every_action_has_roles_and_a_state_rule() -> None:
    assert set(ACTION_ROLES) == set(ActionKind) == set(STATE_AFTER)


POLICE = [
    # roles, action, police step, state -> refusal (None: allowed)
    ({R.SLT}, ActionKind.POLICE_REPORTED, "pending", CaseState.NEW, None),
    ({R.DSL}, ActionKind.POLICE_NOT_NEEDED, "pending", CaseState.ESCALATED, None),
    ({R.PRINCIPAL}, ActionKind.POLICE_REPORTED, "pending", CaseState.CLOSED, None),
    ({R.DEPUTY_DSL}, ActionKind.POLICE_REPORTED, "not_needed", CaseState.NEW, None),
    ({R.MODERATOR, R.COMMS}, ActionKind.POLICE_REPORTED, "pending", CaseState.NEW, "roles"),
    ({R.SLT}, ActionKind.POLICE_REPORTED, None, CaseState.NEW, "no police report step"),
]


@pytest.mark.parametrize(("roles", "action", "step", "state", "why"), POLICE)
def test_police_step_decisions(
    roles: set[Role], action: ActionKind, step: str | None, state: CaseState, why: str | None
) -> None:
    got = refusal(roles, action, category=C.THREAT, restricted=False, state=state, police_step=step)
    assert (got is None) if why is None else (got is not None and why in got), got


@pytest.mark.parametrize("action", list(ActionKind))
def test_no_one_acts_on_a_case_of_a_school_they_do_not_serve(action: ActionKind) -> None:
    every = set(Role)
    why = refusal(
        every,
        action,
        category=C.THREAT,
        restricted=False,
        state=CaseState.NEW,
        serves_school=False,
        police_step="pending",
    )
    assert why is not None and "school you do not serve" in why


EXPORTS = [
    # roles, export, serves the case's school -> refusal contains (None: allowed)
    ({R.DSL}, ExportKind.SAFEGUARDING_EVIDENCE, True, None),
    ({R.DEPUTY_DSL}, ExportKind.SAFEGUARDING_EVIDENCE, True, None),
    ({R.SLT, R.PRINCIPAL}, ExportKind.SAFEGUARDING_EVIDENCE, True, "roles: deputy_dsl, dsl"),
    ({R.IT_ADMIN}, ExportKind.SAFEGUARDING_EVIDENCE, True, "safeguarding case needs"),
    ({R.MODERATOR, R.COMMS}, ExportKind.SAFEGUARDING_EVIDENCE, True, "deputy_dsl, dsl"),
    ({R.DSL}, ExportKind.SAFEGUARDING_EVIDENCE, False, "school you do not serve"),
    ({R.DSL}, ExportKind.EVIDENCE, True, None),
    ({R.DEPUTY_DSL}, ExportKind.EVIDENCE, True, None),
    ({R.SLT}, ExportKind.EVIDENCE, True, None),
    ({R.PRINCIPAL}, ExportKind.EVIDENCE, True, None),
    ({R.IT_ADMIN}, ExportKind.EVIDENCE, True, None),
    ({R.MODERATOR, R.COMMS}, ExportKind.EVIDENCE, True, "deputy_dsl, dsl, it_admin, principal"),
    ({R.SLT}, ExportKind.EVIDENCE, False, "school you do not serve"),
    ({R.SLT}, ExportKind.SUBJECT_ACCESS, True, None),
    ({R.PRINCIPAL}, ExportKind.SUBJECT_ACCESS, True, None),
    ({R.DSL}, ExportKind.SUBJECT_ACCESS, True, None),
    ({R.IT_ADMIN}, ExportKind.SUBJECT_ACCESS, True, None),
    ({R.DEPUTY_DSL}, ExportKind.SUBJECT_ACCESS, True, "dsl, it_admin, principal, slt"),
    ({R.MODERATOR, R.COMMS}, ExportKind.SUBJECT_ACCESS, True, "subject-access export needs"),
    (set(), ExportKind.SUBJECT_ACCESS, True, "needs one of these roles"),
]


@pytest.mark.parametrize(("roles", "kind", "serves", "why"), EXPORTS)
def test_who_may_export(roles: set[Role], kind: ExportKind, serves: bool, why: str | None) -> None:
    got = export_refusal(roles, kind, serves_school=serves)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_every_export_has_roles() -> None:
    assert set(EXPORT_ROLES) == set(ExportKind)


@pytest.mark.parametrize(
    ("category", "restricted", "kind"),
    [
        (C.SAFEGUARDING, True, ExportKind.SAFEGUARDING_EVIDENCE),
        (C.SAFEGUARDING, False, ExportKind.SAFEGUARDING_EVIDENCE),
        # abuse that also raised a safeguarding concern is restricted: the DSL's too
        (C.ABUSIVE, True, ExportKind.SAFEGUARDING_EVIDENCE),
        (C.ABUSIVE, False, ExportKind.EVIDENCE),
        (C.THREAT, False, ExportKind.EVIDENCE),
        (C.TWO_ADMINS, False, ExportKind.EVIDENCE),
    ],
)
def test_which_export_a_cases_evidence_is(
    category: Category, restricted: bool, kind: ExportKind
) -> None:
    assert evidence_export_kind(category=category, restricted=restricted) is kind


ASSIGNEES = [
    # assignee's roles, in post, serves the case's school, safeguarding case -> refusal contains
    ({R.MODERATOR}, True, True, False, None),
    ({R.MODERATOR}, False, True, False, "not an active member of staff"),
    ({R.MODERATOR}, True, False, False, "does not serve this case's school"),
    ({R.DSL}, True, False, True, "does not serve"),
    ({R.DSL}, False, True, True, "not an active member"),
    ({R.DSL}, True, True, True, None),
    ({R.DEPUTY_DSL}, True, True, True, None),
    ({R.MODERATOR, R.COMMS}, True, True, True, "needs one of these roles: deputy_dsl, dsl"),
    ({R.SLT, R.PRINCIPAL}, True, True, True, "cannot be given a safeguarding case"),
    (set(), True, True, False, None),
]


@pytest.mark.parametrize(("roles", "in_post", "serves", "safeguarding", "why"), ASSIGNEES)
def test_who_may_be_assigned_a_case(
    roles: set[Role], in_post: bool, serves: bool, safeguarding: bool, why: str | None
) -> None:
    got = assignee_refusal(
        "pat", roles=roles, in_post=in_post, serves_school=serves, safeguarding=safeguarding
    )
    assert (got is None) if why is None else (got is not None and why in got), got
    assert got is None or got.startswith("pat ")  # names who was refused


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


@pytest.mark.parametrize("hours", [-1, 0, 30])
def test_an_answered_item_never_reminds_or_breaches(hours: int) -> None:
    step = clock_step(
        due_at=MONDAY,
        remind_at=MONDAY - timedelta(hours=4),
        reminded=False,
        breached=False,
        now=MONDAY + timedelta(hours=hours),
        responded=True,
    )
    assert step is ClockStep.NONE


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
    ("enabled_accounts", "dsls", "ok"),
    [
        (1, (), False),  # watched, and no DSL or deputy in post
        (3, (), False),
        (1, ("deputy",), True),
        (2, ("dsl", "deputy"), True),
        (0, (), True),  # nothing watched (accounts disabled or none): nothing to route
        (0, ("dsl",), True),
    ],
)
def test_a_watched_school_needs_a_dsl_in_post(
    enabled_accounts: int, dsls: tuple[str, ...], ok: bool
) -> None:
    problem = dsl_problem(enabled_accounts=enabled_accounts, dsls_in_post=dsls)
    assert (problem is None) is ok
    assert ok or "no DSL or deputy DSL in post" in str(problem)


LAST_DAY = date(2027, 7, 22)


@pytest.mark.parametrize(
    ("active", "leaving_on", "today", "counts"),
    [
        (True, None, LAST_DAY, True),
        (False, None, LAST_DAY, False),
        (True, LAST_DAY, LAST_DAY - timedelta(days=1), True),
        (True, LAST_DAY, LAST_DAY, True),  # the leaving date is their last day
        # the day after, they have gone, even if a blocked handover left them "active"
        (True, LAST_DAY, LAST_DAY + timedelta(days=1), False),
        (True, LAST_DAY, LAST_DAY + timedelta(days=400), False),
        (False, LAST_DAY, LAST_DAY - timedelta(days=5), False),
    ],
)
def test_who_counts_as_an_administrator(
    active: bool, leaving_on: date | None, today: date, counts: bool
) -> None:
    assert in_post(active=active, leaving_on=leaving_on, today=today) is counts


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
    # a named successor always takes over (the R3 re-check reports an account still short)
    ({"leaver"}, "s", {"s"}, set(), "s", False),
    ({"leaver"}, None, set(), set(), None, True),
    ({"leaver", "b"}, "leaver", {"b"}, {"b"}, None, True),
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
DIRECTORY = Directory(PEOPLE, ROUTING, now=MONDAY)


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


ALERT_TABLE = [
    # category, urgent -> the school channel's view, who is told directly (DM and/or email)
    (C.SAFEGUARDING, True, ("#oak", "restricted_note"), {"dsl"}),
    (C.THREAT, True, ("#oak", "full"), {"dsl", "head"}),
    (C.PERSONAL_DATA, True, ("#oak", "restricted_note"), {"dsl", "mod"}),  # R12: in words
    (C.ABUSIVE, False, ("#oak-mod", "full"), set()),
    (C.MEDIA_ENQUIRY, False, ("#oak", "restricted_note"), {"head"}),
    (C.NEGATIVE_MENTION, False, ("#oak", "full"), {"head"}),
    (C.NEEDS_RESPONSE, False, ("#oak", "full"), set()),
    (C.TWO_ADMINS, False, None, {"head"}),
    (C.SCHOOL_WITHOUT_DSL, False, None, {"head"}),
    (C.MONITORING_GAP, False, ("#it", "full"), {"it"}),
]
ADDRESSES = {p.email: p.key for p in PEOPLE} | {p.slack_user_id: p.key for p in PEOPLE}


@pytest.mark.parametrize(("category", "urgent", "channel", "direct"), ALERT_TABLE)
def test_who_is_told_about_each_category(
    category: Category, urgent: bool, channel: tuple[str, str] | None, direct: set[str]
) -> None:
    route = ROUTES[category]
    plans = plan_case_alerts(
        DIRECTORY,
        category=category,
        categories=frozenset({category}),
        school_key="oak",
        restricted=route.restricted,
        urgent=route.urgent,
    )
    assert route.urgent is urgent
    posts = {(p.target, p.audience.value) for p in plans if p.target.startswith("#")}
    assert posts == ({channel} if channel else set())
    told = {ADDRESSES[p.target] for p in plans if not p.target.startswith("#")}
    assert told == direct  # never a member of staff of another school (elm-mod)
    assert all(p.urgent is urgent for p in plans)


def test_routing_overrides_name_the_dsl() -> None:
    directory = Directory(PEOPLE, ROUTING.model_copy(update={"dsl": ["head"]}), now=MONDAY)
    plans = plan_case_alerts(
        directory,
        category=C.SAFEGUARDING,
        categories=frozenset({C.SAFEGUARDING}),
        school_key="oak",
        restricted=True,
        urgent=True,
    )
    assert {t[1] for t in targets(plans)} == {"#oak", "head@s.uk"}


def test_a_successor_who_already_administers_the_account_is_explained() -> None:
    plan = plan_handover(
        account_key="acc",
        admins=frozenset({"leaver", "b"}),
        leaver="leaver",
        successor="b",
        active=frozenset({"b"}),
    )
    assert plan.refused is not None and "b already administers it" in plan.refused


def test_automatic_hiding_is_off_by_default_and_then_a_dry_run() -> None:
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    defaults = config.model_copy(update={"classifier": Classifier()})
    policy = item_policy(defaults, "oakfield")
    assert (policy.auto_hide_enabled, policy.auto_hide_dry_run) == (False, True)
    decision = decide_for_item(facts(C.ABUSIVE, scores={"toxicity": 1.0}), policy)
    assert decision is not None and decision.auto_action is None
    switched_on = defaults.model_copy(
        update={"classifier": Classifier(auto_hide=AutoHide(enabled=True))}
    )
    decision = decide_for_item(
        facts(C.ABUSIVE, scores={"toxicity": 1.0}), item_policy(switched_on, "oakfield")
    )
    assert decision is not None and decision.auto_action is ActionKind.HIDE
    assert decision.auto_action_dry_run is True  # turning it on still only records, at first


def test_every_action_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if "--do ACTION" in line]
    assert [a.value for a in ActionKind if not re.search(rf"\b{a.value}\b", row)] == []


def test_alert_channel_enum_values_are_stable() -> None:
    assert {c.value for c in AlertChannel} == {"slack", "email"}
    assert time(17, 0) == WorkingCalendar().end_of_day


@pytest.mark.parametrize(
    ("state", "answered_days_ago", "settles"),
    [
        (CaseState.RESPONDED, 14, True),
        (CaseState.RESPONDED, 13.9, False),
        (CaseState.RESPONDED, None, False),  # marked responded with no time: never guesses
        (CaseState.ESCALATED, 30, False),  # re-opened after the answer: a person decides
        (CaseState.ACKNOWLEDGED, 30, False),
    ],
)
def test_answered_cases_settle_after_two_weeks(
    state: CaseState, answered_days_ago: float | None, settles: bool
) -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    responded_at = None if answered_days_ago is None else now - timedelta(days=answered_days_ago)
    assert responded_case_settles(state=state, responded_at=responded_at, now=now) is settles


@pytest.mark.parametrize(
    ("category", "holder"),
    [
        (C.MEDIA_ENQUIRY, "head"),  # R11: the principal's, not the general queue's
        (C.NEEDS_RESPONSE, None),
        (C.NEGATIVE_MENTION, None),
        (C.ABUSIVE, None),
    ],
)
def test_who_holds_a_new_case(category: Category, holder: str | None) -> None:
    held = case_holder(EVERYONE, category, "oak")
    assert (held.key if held else None) == holder
