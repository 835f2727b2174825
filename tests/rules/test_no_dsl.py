"""Table tests for R6 with no DSL in post: who is told in the DSL's place, and who may see it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from monitor.config_models import Routing, SchoolChannels
from monitor.constants import ActionKind, CaseState, Category, Role
from monitor.directory import Directory, Person
from monitor.rules.alerting import (
    Audience,
    ContentAccess,
    plan_case_alerts,
    restricted_access,
)
from monitor.rules.permissions import refusal
from monitor.rules.routing import ROUTES
from monitor.rules.visibility import dsl_stand_ins

C = Category
R = Role
LAST_DAY = date(2027, 7, 22)
ON_LAST_DAY = datetime(2027, 7, 22, 12, 0, tzinfo=UTC)
MORNING_AFTER = datetime(2027, 7, 23, 8, 0, tzinfo=UTC)


def person(
    key: str, roles: set[Role], schools: set[str], *, active: bool = True, last_day: bool = False
) -> Person:
    return Person(
        key,
        key.title(),
        f"{key}@s.uk",
        f"U{key.upper()}",
        frozenset(roles),
        frozenset(schools),
        active=active,
        leaving_on=LAST_DAY if last_day else None,
    )


STAFF = {
    p.key: p
    for p in (
        person("dsl", {R.DSL}, {"oak"}, last_day=True),  # Oak's DSL: their last day is LAST_DAY
        person("deputy", {R.DEPUTY_DSL, R.MODERATOR}, {"oak"}),
        person("away", {R.DEPUTY_DSL}, {"oak"}, active=False),
        person("head", {R.PRINCIPAL, R.SLT}, {"oak"}),
        person("slt", {R.SLT}, {"oak"}),
        person("ceo", {R.SLT}, set()),  # trust-wide
        person("mod", {R.MODERATOR}, {"oak"}),
        person("elmdsl", {R.DSL}, {"elm"}),
        person("elmhead", {R.PRINCIPAL, R.SLT}, {"elm"}),
        person("newdsl", {R.DSL}, {"oak"}),  # the DSL who replaces them
    )
}


def directory(staff: str, now: datetime, **routing: list[str]) -> Directory:
    return Directory(
        tuple(STAFF[key] for key in staff.split()),
        Routing(schools={"oak": SchoolChannels(default="#oak")}, **routing),
        now=now,
    )


ALERTS = [
    # staff, now, category, routing overrides -> told directly, of whom told in the DSL's place
    ("dsl head", ON_LAST_DAY, C.SAFEGUARDING, {}, {"dsl"}, set()),  # their last day: in post
    ("dsl head slt ceo", MORNING_AFTER, C.SAFEGUARDING, {}, {"head"}, {"head"}),
    ("dsl deputy head", MORNING_AFTER, C.SAFEGUARDING, {}, {"deputy"}, set()),
    ("dsl away head", MORNING_AFTER, C.SAFEGUARDING, {}, {"head"}, {"head"}),  # deputy inactive
    # no principal in post either: SLT (the school's and the trust's)
    ("dsl slt ceo mod", MORNING_AFTER, C.SAFEGUARDING, {}, {"slt", "ceo"}, {"slt", "ceo"}),
    ("dsl ceo elmhead", MORNING_AFTER, C.SAFEGUARDING, {}, {"ceo"}, {"ceo"}),
    # another school's DSL does not count, nor is another school's principal told
    ("dsl elmdsl head elmhead", MORNING_AFTER, C.SAFEGUARDING, {}, {"head"}, {"head"}),
    ("dsl mod", MORNING_AFTER, C.SAFEGUARDING, {}, set(), set()),  # nobody left to tell
    # routing.dsl names a DSL who has gone: the others with the role, before any stand-in
    ("dsl deputy head", MORNING_AFTER, C.SAFEGUARDING, {"dsl": ["dsl"]}, {"deputy"}, set()),
    # routing.slt names who the principal's alerts go to (as for R10 and R11)
    ("dsl head ceo", MORNING_AFTER, C.SAFEGUARDING, {"slt": ["ceo"]}, {"ceo"}, {"ceo"}),
    # a threat already reaches leaders; with no DSL the principal is told that plainly
    ("dsl head ceo", MORNING_AFTER, C.THREAT, {}, {"head", "ceo"}, {"head"}),
    ("dsl ceo", MORNING_AFTER, C.THREAT, {}, {"ceo"}, {"ceo"}),
    ("dsl head ceo", ON_LAST_DAY, C.THREAT, {}, {"dsl", "head", "ceo"}, set()),
    # other categories that involve the DSL keep their own routes
    ("dsl head mod", MORNING_AFTER, C.PERSONAL_DATA, {}, {"mod"}, set()),
    ("dsl head mod", MORNING_AFTER, C.ABUSIVE, {}, set(), set()),
]


@pytest.mark.parametrize(("staff", "now", "category", "routing", "told", "no_dsl"), ALERTS)
def test_who_is_told_when_no_dsl_is_in_post(
    staff: str,
    now: datetime,
    category: Category,
    routing: dict[str, list[str]],
    told: set[str],
    no_dsl: set[str],
) -> None:
    route = ROUTES[category]
    plans = plan_case_alerts(
        directory(staff, now, **routing),
        category=category,
        categories=frozenset({category}),
        school_key="oak",
        restricted=route.restricted,
        urgent=route.urgent,
    )
    direct = [p for p in plans if not p.target.startswith("#")]
    # by DM and by email, with the content, at once (quiet hours never hold them)
    assert {p.target for p in direct} == {f"{k}@s.uk" for k in told} | {
        f"U{k.upper()}" for k in told
    }
    assert all(p.audience is Audience.FULL and p.urgent is route.urgent for p in direct)
    assert {p.target for p in direct if p.no_dsl} == {f"{k}@s.uk" for k in no_dsl} | {
        f"U{k.upper()}" for k in no_dsl
    }
    # the school's channel never sees more than before: a safeguarding case stays a note
    [channel] = [p for p in plans if p.target.startswith("#")]
    assert (
        channel.audience is (Audience.RESTRICTED_NOTE if route.restricted else Audience.FULL)
        and not channel.no_dsl
    )


def test_an_escalated_safeguarding_case_with_a_dsl_still_stays_with_the_dsl() -> None:
    plans = plan_case_alerts(
        directory("dsl head ceo", ON_LAST_DAY),
        category=C.SAFEGUARDING,
        categories=frozenset({C.SAFEGUARDING}),
        school_key="oak",
        restricted=True,
        urgent=True,
        escalation=True,
    )
    assert {p.target for p in plans} == {"#oak", "UDSL", "dsl@s.uk"}


ACCESS = [
    # staff in the directory, now, who asks -> may they see a restricted case of Oak, and why
    ("dsl head", ON_LAST_DAY, "dsl", ContentAccess.DSL),
    ("dsl head", MORNING_AFTER, "dsl", ContentAccess.NONE),  # gone
    ("dsl head", ON_LAST_DAY, "head", ContentAccess.NONE),  # a DSL is in post: theirs alone
    ("dsl head", MORNING_AFTER, "head", ContentAccess.STAND_IN),
    ("dsl deputy head", MORNING_AFTER, "head", ContentAccess.NONE),
    ("dsl head ceo", MORNING_AFTER, "ceo", ContentAccess.NONE),  # the principal is told first
    ("dsl ceo", MORNING_AFTER, "ceo", ContentAccess.STAND_IN),
    ("dsl head mod", MORNING_AFTER, "mod", ContentAccess.NONE),
    ("dsl head elmhead", MORNING_AFTER, "elmhead", ContentAccess.NONE),  # another school's
    ("dsl elmdsl head", MORNING_AFTER, "head", ContentAccess.STAND_IN),
]


@pytest.mark.parametrize(("staff", "now", "who", "access"), ACCESS)
def test_who_may_see_a_safeguarding_case_with_no_dsl_in_post(
    staff: str, now: datetime, who: str, access: ContentAccess
) -> None:
    assert restricted_access(directory(staff, now), STAFF[who], "oak") is access


def test_no_stand_ins_while_a_dsl_is_in_post() -> None:
    assert dsl_stand_ins(directory("dsl head", ON_LAST_DAY), "oak") == []
    assert [p.key for p in dsl_stand_ins(directory("dsl head", MORNING_AFTER), "oak")] == ["head"]


A = ActionKind
ACTING = [
    # staff in the directory, now, who acts, action -> may they, on a safeguarding case of Oak
    ("dsl head", MORNING_AFTER, "head", A.HIDE, True),  # the principal, in the DSL's place
    ("dsl head", MORNING_AFTER, "head", A.ACKNOWLEDGE, True),
    ("dsl head", MORNING_AFTER, "head", A.POLICE_REPORTED, True),
    ("dsl slt ceo", MORNING_AFTER, "slt", A.HIDE, True),  # no principal in post: SLT
    ("dsl slt ceo", MORNING_AFTER, "ceo", A.ACKNOWLEDGE, True),
    ("dsl head slt", MORNING_AFTER, "slt", A.HIDE, False),  # the principal is the stand-in
    ("dsl head slt", MORNING_AFTER, "slt", A.ACKNOWLEDGE, False),
    ("dsl head mod", MORNING_AFTER, "mod", A.HIDE, False),  # not the DSL's line of escalation
    ("dsl head elmhead", MORNING_AFTER, "elmhead", A.HIDE, False),  # another school's
    ("dsl head", ON_LAST_DAY, "head", A.HIDE, False),  # the DSL is still in post
    ("dsl head", ON_LAST_DAY, "dsl", A.HIDE, True),
    # a DSL or deputy back in post: the former stand-in is refused again
    ("dsl newdsl head", MORNING_AFTER, "head", A.HIDE, False),
    ("dsl newdsl head", MORNING_AFTER, "head", A.ACKNOWLEDGE, False),
    ("dsl deputy head", MORNING_AFTER, "head", A.HIDE, False),
    ("dsl newdsl head", MORNING_AFTER, "newdsl", A.HIDE, True),
]


@pytest.mark.parametrize(("staff", "now", "who", "action", "allowed"), ACTING)
def test_who_may_act_on_a_safeguarding_case_with_no_dsl_in_post(
    staff: str, now: datetime, who: str, action: ActionKind, allowed: bool
) -> None:
    people = directory(staff, now)
    actor = STAFF[who]
    why = refusal(
        people.effective_roles(actor),
        action,
        category=C.SAFEGUARDING,
        restricted=True,
        state=CaseState.NEW,
        serves_school=actor.serves("oak"),
        police_step="pending",
        stand_in=restricted_access(people, actor, "oak") is ContentAccess.STAND_IN,
    )
    assert (why is None) is allowed, why
