"""Table tests for the directory as of a moment: leaving dates, fan-out, handover and exports."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from monitor.config_models import Routing
from monitor.constants import Category, Role
from monitor.directory import Directory, Person
from monitor.rules.alerting import plan_case_alerts
from monitor.rules.permissions import Candidate, handover_assignee
from monitor.rules.visibility import may_see_content

R = Role
LAST_DAY = date(2027, 7, 22)
# 23:30 UTC on the last day: already the next day in London (BST) and in Auckland
LATE_ON_LAST_DAY = datetime(2027, 7, 22, 23, 30, tzinfo=UTC)
MORNING_AFTER = datetime(2027, 7, 23, 8, 0, tzinfo=UTC)
ON_LAST_DAY = datetime(2027, 7, 22, 12, 0, tzinfo=UTC)


def person(
    key: str,
    roles: set[Role],
    schools: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    active: bool = True,
    leaving_on: date | None = None,
) -> Person:
    return Person(
        key,
        key.title(),
        f"{key}@s.uk",
        f"U{key.upper()}",
        frozenset(roles),
        frozenset(schools),
        active=active,
        leaving_on=leaving_on,
    )


def directory(*people: Person, now: datetime = ON_LAST_DAY, **routing: list[str]) -> Directory:
    return Directory(
        people,
        Routing(**routing),
        now=now,
        timezone="Europe/London",
        school_timezones={
            "oak": "Europe/London",
            "kiwi": "Pacific/Auckland",
            "ny": "America/New_York",
        },
    )


@pytest.mark.parametrize(
    ("now", "school", "today"),
    [
        (ON_LAST_DAY, None, LAST_DAY),
        (LATE_ON_LAST_DAY, None, date(2027, 7, 23)),  # the organisation's date: London
        (LATE_ON_LAST_DAY, "oak", date(2027, 7, 23)),
        (LATE_ON_LAST_DAY, "ny", LAST_DAY),  # still the evening of the 22nd in New York
        (ON_LAST_DAY, "kiwi", date(2027, 7, 23)),
        (ON_LAST_DAY, "unknown-school", LAST_DAY),  # falls back to the organisation's zone
    ],
)
def test_today_is_the_schools_local_date(now: datetime, school: str | None, today: date) -> None:
    assert directory(now=now).today(school) == today


@pytest.mark.parametrize(
    ("active", "leaving_on", "now", "school", "in_post"),
    [
        (True, None, MORNING_AFTER, None, True),
        (False, None, ON_LAST_DAY, None, False),
        (True, LAST_DAY, ON_LAST_DAY, None, True),  # their last day: still in post
        (True, LAST_DAY, MORNING_AFTER, None, False),  # the day after: gone, though "active"
        (True, LAST_DAY, LATE_ON_LAST_DAY, "oak", False),  # already the 23rd in London
        (True, LAST_DAY, LATE_ON_LAST_DAY, "ny", True),  # still the 22nd in New York
        (False, LAST_DAY, ON_LAST_DAY, None, False),
    ],
)
def test_who_is_in_post(
    active: bool, leaving_on: date | None, now: datetime, school: str | None, in_post: bool
) -> None:
    pat = person("pat", {R.DSL}, active=active, leaving_on=leaving_on)
    assert directory(pat, now=now).in_post(pat, school) is in_post


DSL = person("dsl", {R.DSL}, {"oak"}, leaving_on=LAST_DAY)
DEPUTY = person("deputy", {R.DEPUTY_DSL}, {"oak"})
HEAD = person("head", {R.SLT, R.PRINCIPAL}, {"oak"}, leaving_on=LAST_DAY)
TRUST_SLT = person("ceo", {R.SLT})
ELM_DSL = person("elmdsl", {R.DSL}, {"elm"})

FAN_OUT = [
    # roles asked for, routing overrides, now -> who is told (oak's matters)
    ({R.DSL, R.DEPUTY_DSL}, {}, ON_LAST_DAY, {"deputy", "dsl"}),
    ({R.DSL, R.DEPUTY_DSL}, {}, MORNING_AFTER, {"deputy"}),  # the DSL has gone: the deputy
    ({R.SLT, R.PRINCIPAL}, {}, MORNING_AFTER, {"ceo"}),
    # routing names the DSL: only them while in post ...
    ({R.DSL, R.DEPUTY_DSL}, {"dsl": ["dsl"]}, ON_LAST_DAY, {"dsl"}),
    # ... and once they have gone, the others holding the role rather than no one
    ({R.DSL, R.DEPUTY_DSL}, {"dsl": ["dsl"]}, MORNING_AFTER, {"deputy"}),
    ({R.DSL, R.DEPUTY_DSL}, {"dsl": ["dsl", "deputy"]}, MORNING_AFTER, {"deputy"}),
    ({R.SLT}, {"slt": ["head"]}, MORNING_AFTER, {"ceo"}),
    ({R.DSL, R.DEPUTY_DSL}, {"dsl": ["elmdsl"]}, ON_LAST_DAY, {"deputy", "dsl"}),  # named: elm
]


@pytest.mark.parametrize(("roles", "overrides", "now", "told"), FAN_OUT)
def test_fan_out_skips_staff_past_their_leaving_date(
    roles: set[Role], overrides: dict[str, list[str]], now: datetime, told: set[str]
) -> None:
    people = directory(DSL, DEPUTY, HEAD, TRUST_SLT, ELM_DSL, now=now, **overrides)
    assert {p.key for p in people.with_roles(roles, "oak")} == told


@pytest.mark.parametrize(
    ("now", "told"), [(ON_LAST_DAY, {"dsl", "deputy"}), (MORNING_AFTER, {"deputy"})]
)
def test_a_safeguarding_alert_reaches_only_dsls_in_post(now: datetime, told: set[str]) -> None:
    plans = plan_case_alerts(
        directory(DSL, DEPUTY, HEAD, now=now),
        category=Category.SAFEGUARDING,
        categories=frozenset({Category.SAFEGUARDING}),
        school_key="oak",
        restricted=True,
        urgent=True,
    )
    direct = {p.target for p in plans if not p.target.startswith("#")}
    assert direct == {f"{k}@s.uk" for k in told} | {f"U{k.upper()}" for k in told}


def candidate(
    key: str, roles: set[Role], *, in_post: bool = True, serves: bool = True
) -> Candidate:
    return Candidate(key, frozenset(roles), in_post=in_post, serves_school=serves)


COMMS = candidate("succ", {R.COMMS, R.MODERATOR})
DSL_SUCCESSOR = candidate("newdsl", {R.DSL})
ADMIN = candidate("admin", {R.MODERATOR})
DEPUTY_C = candidate("deputy", {R.DEPUTY_DSL})
OTHER_DSL = candidate("otherdsl", {R.DSL})

HANDOVERS = [
    # successor, account admins, school's DSLs, safeguarding -> new owner
    (COMMS, [ADMIN], [DEPUTY_C], False, "succ"),
    (COMMS, [ADMIN], [DEPUTY_C], True, "deputy"),  # a successor without the role: the deputy
    (DSL_SUCCESSOR, [ADMIN], [DEPUTY_C], True, "newdsl"),
    (None, [ADMIN], [DEPUTY_C], True, "deputy"),
    (None, [ADMIN], [DEPUTY_C], False, "admin"),
    (COMMS, [ADMIN], [], True, None),  # no DSL in post: unassigned (and SLT are told)
    (COMMS, [candidate("admin-dsl", {R.DSL})], [], True, None),  # admins are not the fallback
    (candidate("succ", {R.DSL}, serves=False), [], [DEPUTY_C], True, "deputy"),  # other school
    (candidate("succ", {R.DSL}, in_post=False), [], [DEPUTY_C], True, "deputy"),
    (candidate("succ", {R.MODERATOR}, serves=False), [ADMIN], [], False, "admin"),
    (None, [candidate("gone", {R.MODERATOR}, in_post=False), ADMIN], [], False, "admin"),
    (None, [], [candidate("leaver", {R.DSL}), OTHER_DSL], True, "otherdsl"),  # never the leaver
    (None, [], [], False, None),
]


@pytest.mark.parametrize(("successor", "admins", "dsls", "safeguarding", "owner"), HANDOVERS)
def test_who_takes_a_leavers_case(
    successor: Candidate | None,
    admins: list[Candidate],
    dsls: list[Candidate],
    safeguarding: bool,
    owner: str | None,
) -> None:
    got = handover_assignee(
        leaver="leaver", successor=successor, admins=admins, dsls=dsls, safeguarding=safeguarding
    )
    assert got == owner


@pytest.mark.parametrize(
    ("roles", "serves", "sees"),
    [
        ({R.DSL}, True, True),
        ({R.DEPUTY_DSL}, True, True),
        ({R.DSL}, False, False),  # another school's DSL
        ({R.SLT, R.PRINCIPAL}, True, False),
        ({R.IT_ADMIN}, True, False),
        ({R.SLT, R.DEPUTY_DSL}, True, True),
    ],
)
def test_who_sees_safeguarding_records_in_an_export(
    roles: set[Role], serves: bool, sees: bool
) -> None:
    # Oak has a DSL in post, so nobody stands in (tests/rules/test_visibility.py has the rest)
    asker = person("asker", roles, {"oak"} if serves else {"elm"})
    people = Directory((person("oakdsl", {R.DSL}, {"oak"}), asker), Routing(), now=MORNING_AFTER)
    sight = may_see_content(
        people, asker, school_key="oak", category=Category.SAFEGUARDING, restricted=True
    )
    assert sight.allowed is sees
