"""Who may see a case's content now (R6): the one decision every surface calls.

Slack and email delivery, the CLI, the exports, alert planning, actions and the compliance
checks all ask ``may_see_content``; nothing else decides it. A safeguarding case's content
is for its school's DSL and deputy DSLs in post; while none is in post, for whoever is told
in their place (``NO_DSL_STAND_INS``). Leavers, inactive staff and other schools' staff see
only that the DSL has it. A personal-data case's content (R12) is for the school's moderators
and DSLs in post (``PERSONAL_DATA_VIEWERS``); shared channels and everyone else are told in
words what was exposed. Everything else is visible to whoever may see the case at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.constants import Category
from monitor.rules.routing import NO_DSL_STAND_INS, PERSONAL_DATA_VIEWERS, RESTRICTED_VIEWERS
from monitor.rules.staff import Person, StaffDirectory


class ContentAccess(StrEnum):
    """Whether someone may see a case's content now, and why (R6)."""

    NONE = "none"  # a safeguarding case they may not see
    DSL = "dsl"  # a DSL or deputy DSL in post at the case's school
    STAND_IN = "stand_in"  # no DSL or deputy in post: told in their place (NO_DSL_STAND_INS)
    PERSONAL = "personal"  # a personal-data case: a moderator or DSL in post at its school
    OPEN = "open"  # not a safeguarding or personal-data case: its content is not restricted


@dataclass(frozen=True)
class Sight:
    """The answer of ``may_see_content``: the access, and why not when there is none."""

    access: ContentAccess
    refusal: str | None  # None: they may see it

    @property
    def allowed(self) -> bool:
        """True when they may see the content."""
        return self.refusal is None


def is_safeguarding(*, category: Category, restricted: bool) -> bool:
    """Whether a case is a safeguarding matter, its content for the DSL and deputies only (R6)."""
    # restricted also covers a case whose safeguarding concern is not its main category
    return restricted or category is Category.SAFEGUARDING


def dsls_in_post(directory: StaffDirectory, school_key: str | None) -> list[Person]:
    """The school's DSLs and deputy DSLs in post (``routing.dsl`` honoured)."""
    return directory.with_roles(RESTRICTED_VIEWERS, school_key)


def dsl_stand_ins(directory: StaffDirectory, school_key: str | None) -> list[Person]:
    """Who hears of safeguarding in the DSL's place: nobody while a DSL or deputy is in post."""
    if dsls_in_post(directory, school_key):
        return []
    for roles in NO_DSL_STAND_INS:
        people = directory.with_roles(roles, school_key)
        if people:
            return people
    return []


def restricted_access(
    directory: StaffDirectory, person: Person, school_key: str | None
) -> ContentAccess:
    """Whether ``person`` may see the content of a restricted case of ``school_key`` now."""
    if not directory.in_post(person, school_key) or not person.serves(school_key):
        return ContentAccess.NONE
    if directory.effective_roles(person) & RESTRICTED_VIEWERS:
        return ContentAccess.DSL
    if any(p.key == person.key for p in dsl_stand_ins(directory, school_key)):
        return ContentAccess.STAND_IN
    return ContentAccess.NONE


REFUSED = (
    "this is a safeguarding case: its content is for the DSL and deputy DSLs in post "
    "(or, while none is in post, whoever is alerted in their place)"
)


PERSONAL_REFUSED = (
    "this case exposes personal data: its content is for the school's moderators and DSLs "
    "in post; others are told in words what was exposed"
)


def personal_data_access(
    directory: StaffDirectory, person: Person | None, school_key: str | None
) -> ContentAccess:
    """Whether ``person`` may see a personal-data case of ``school_key`` in full (R12)."""
    if person is None or not directory.in_post(person, school_key) or not person.serves(school_key):
        return ContentAccess.NONE
    if directory.effective_roles(person) & PERSONAL_DATA_VIEWERS:
        return ContentAccess.PERSONAL
    return ContentAccess.NONE


def may_see_content(
    directory: StaffDirectory,
    person: Person | None,
    *,
    school_key: str | None,
    category: Category,
    restricted: bool,
) -> Sight:
    """Whether ``person`` may see the content of a case of ``school_key`` as ``directory`` is now.

    ``person`` None: nobody known (a shared channel, an unknown address), who never sees a
    safeguarding or personal-data case's content.
    """
    if not is_safeguarding(category=category, restricted=restricted):
        if category is Category.PERSONAL_DATA:
            access = personal_data_access(directory, person, school_key)
            return Sight(access, PERSONAL_REFUSED if access is ContentAccess.NONE else None)
        return Sight(ContentAccess.OPEN, None)
    access = (
        ContentAccess.NONE if person is None else restricted_access(directory, person, school_key)
    )
    return Sight(access, REFUSED if access is ContentAccess.NONE else None)
