"""R6: one decision says who may see a case's content, for every surface (table tests).

The old export rule (``sees_safeguarding_records(roles, serves_school)``) judged roles only:
it let a DSL past their leaving date or marked inactive see a disclosure, and withheld it
from the principal standing in while no DSL or deputy was in post. The rows marked
``# was wrong`` are those it answered differently.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from monitor.config_models import Routing
from monitor.constants import Category, Role
from monitor.directory import Directory, Person
from monitor.rules.visibility import ContentAccess, Sight, is_safeguarding, may_see_content

C = Category
R = Role
NOW = datetime(2027, 7, 23, 8, 0, tzinfo=UTC)


def person(key: str, roles: set[Role], schools: set[str], **kw: object) -> Person:
    return Person(key, key, f"{key}@s.uk", f"U{key}", frozenset(roles), frozenset(schools), **kw)  # type: ignore[arg-type]


STAFF = {
    p.key: p
    for p in (
        person("dsl", {R.DSL}, {"oak"}),
        person("deputy", {R.DEPUTY_DSL}, {"oak"}),
        person("left", {R.DSL}, {"oak"}, leaving_on=date(2027, 7, 22)),  # left yesterday
        person("away", {R.DEPUTY_DSL}, {"oak"}, active=False),
        person("head", {R.PRINCIPAL, R.SLT}, {"oak"}),
        person("slt", {R.SLT}, {"oak"}),
        person("mod", {R.MODERATOR}, {"oak"}),
        person("it", {R.IT_ADMIN}, set()),
        person("elmdsl", {R.DSL}, {"elm"}),
        person("trustdsl", {R.DSL}, set()),  # trust-wide
        person("named", {R.SLT}, {"oak"}),  # named DSL by routing.dsl
    )
}

ROWS = [
    # staff in the directory, who asks, category, restricted -> access
    ("dsl head", "dsl", C.SAFEGUARDING, True, ContentAccess.DSL),
    ("deputy head", "deputy", C.SAFEGUARDING, True, ContentAccess.DSL),
    ("dsl head", "head", C.SAFEGUARDING, True, ContentAccess.NONE),  # a DSL is in post
    ("dsl head slt", "slt", C.SAFEGUARDING, True, ContentAccess.NONE),
    ("dsl mod", "mod", C.SAFEGUARDING, True, ContentAccess.NONE),
    ("dsl it", "it", C.SAFEGUARDING, True, ContentAccess.NONE),
    ("dsl elmdsl", "elmdsl", C.SAFEGUARDING, True, ContentAccess.NONE),  # another school's
    ("trustdsl", "trustdsl", C.SAFEGUARDING, True, ContentAccess.DSL),
    ("left head", "left", C.SAFEGUARDING, True, ContentAccess.NONE),  # was wrong: a leaver
    ("away head", "away", C.SAFEGUARDING, True, ContentAccess.NONE),  # was wrong: inactive
    ("left away head", "head", C.SAFEGUARDING, True, ContentAccess.STAND_IN),  # was wrong
    ("left slt", "slt", C.SAFEGUARDING, True, ContentAccess.STAND_IN),  # was wrong: no head
    ("left head slt", "slt", C.SAFEGUARDING, True, ContentAccess.NONE),  # the head stands in
    # a threat whose safeguarding concern is not the main category is restricted too
    ("dsl head", "head", C.THREAT, True, ContentAccess.NONE),
    ("dsl head", "dsl", C.THREAT, True, ContentAccess.DSL),
    # a safeguarding category is restricted even when the flag was not set
    ("dsl head", "head", C.SAFEGUARDING, False, ContentAccess.NONE),
    # anything else is open to whoever may see the case
    ("dsl head mod", "mod", C.ABUSIVE, False, ContentAccess.OPEN),
    ("left", "left", C.THREAT, False, ContentAccess.OPEN),
]


def directory(staff: str, **routing: list[str]) -> Directory:
    return Directory(
        tuple(STAFF[key] for key in staff.split()),
        Routing(**routing),
        now=NOW,
    )


@pytest.mark.parametrize(("staff", "who", "category", "restricted", "access"), ROWS)
def test_who_may_see_a_cases_content(
    staff: str, who: str, category: Category, restricted: bool, access: ContentAccess
) -> None:
    sight = may_see_content(
        directory(staff), STAFF[who], school_key="oak", category=category, restricted=restricted
    )
    assert sight.access is access
    # a reason exactly when they may not see it, naming the DSL (refusal() style)
    assert sight.allowed is (access is not ContentAccess.NONE)
    assert (sight.refusal is None) is sight.allowed
    if not sight.allowed:
        assert sight.refusal is not None and "DSL" in sight.refusal


def test_someone_named_dsl_by_routing_sees_it() -> None:
    sight = may_see_content(
        directory("dsl named", dsl=["named"]),
        STAFF["named"],
        school_key="oak",
        category=C.SAFEGUARDING,
        restricted=True,
    )
    assert sight == Sight(ContentAccess.DSL, None)


@pytest.mark.parametrize(
    ("category", "restricted", "who"),
    [(C.SAFEGUARDING, True, ContentAccess.NONE), (C.ABUSIVE, False, ContentAccess.OPEN)],
)
def test_nobody_known_sees_only_what_is_open(
    category: Category, restricted: bool, who: ContentAccess
) -> None:
    # a shared channel or an address that is nobody's
    sight = may_see_content(
        directory("dsl head"), None, school_key="oak", category=category, restricted=restricted
    )
    assert sight.access is who


@pytest.mark.parametrize(
    ("category", "restricted", "safeguarding"),
    [
        (C.SAFEGUARDING, True, True),
        (C.SAFEGUARDING, False, True),
        (C.THREAT, True, True),
        (C.THREAT, False, False),
        (C.ABUSIVE, False, False),
    ],
)
def test_what_is_a_safeguarding_case(
    category: Category, restricted: bool, safeguarding: bool
) -> None:
    assert is_safeguarding(category=category, restricted=restricted) is safeguarding
