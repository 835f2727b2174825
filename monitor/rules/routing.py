"""Who hears about what (R5, R6, R9-R12 and the operational checks), as data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.constants import Category, Role
from monitor.rules.staff import Person, StaffDirectory


@dataclass(frozen=True)
class Route:
    """How one category is handled."""

    roles: frozenset[Role]  # who is told
    urgent: bool = False  # at once: skips batching and quiet hours; DM and email
    restricted: bool = False  # content visible only to the DSL and deputies (R6)
    response_due: bool = False  # the R2 response clock runs
    police_step: bool = False  # a "consider police report" step on the case (R9)
    school_channel: bool = True  # also posted to the school's Slack channel
    it_channel: bool = False  # posted to the IT channel instead
    direct: frozenset[Role] = frozenset()  # told by DM and email even when not urgent
    # R6: with no DSL or deputy DSL in post for the school, ``NO_DSL_STAND_INS`` are told instead
    dsl_fallback: bool = False
    # R11: the case is given at once to someone in post with one of these roles (``case_holder``)
    held_by: frozenset[Role] = frozenset()
    # the school's channel sees only that one arrived and who holds it, not its content
    channel_note: bool = False


R = Role
ROUTES: dict[Category, Route] = {
    Category.SAFEGUARDING: Route(
        frozenset({R.DSL, R.DEPUTY_DSL}), urgent=True, restricted=True, dsl_fallback=True
    ),
    Category.THREAT: Route(
        frozenset({R.DSL, R.DEPUTY_DSL, R.SLT, R.PRINCIPAL}),
        urgent=True,
        police_step=True,
        dsl_fallback=True,
    ),
    Category.PERSONAL_DATA: Route(frozenset({R.MODERATOR, R.DSL, R.DEPUTY_DSL}), urgent=True),
    # (PERSONAL_DATA_VIEWERS below: the same people are the only ones who see its content)
    Category.ABUSIVE: Route(frozenset({R.MODERATOR})),
    # R11: a media enquiry is the principal's, not the general queue's: it is given to them
    # and they hear of it directly; the channel sees that one arrived and who holds it
    Category.MEDIA_ENQUIRY: Route(
        frozenset({R.PRINCIPAL}),
        response_due=True,
        direct=frozenset({R.PRINCIPAL}),
        held_by=frozenset({R.PRINCIPAL}),
        channel_note=True,
    ),
    # R10: comms see it in the school's channel; the principal is told directly
    Category.NEGATIVE_MENTION: Route(
        frozenset({R.COMMS, R.PRINCIPAL}), direct=frozenset({R.PRINCIPAL})
    ),
    Category.NEEDS_RESPONSE: Route(frozenset({R.COMMS}), response_due=True),
    Category.MONITORING_GAP: Route(frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True),
    Category.TWO_ADMINS: Route(frozenset({R.SLT, R.PRINCIPAL}), school_channel=False),
    Category.ACCOUNT_REGISTER: Route(frozenset({R.SLT, R.IT_ADMIN}), school_channel=False),
    Category.CREDENTIAL_ROTATION: Route(
        frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True
    ),
    # R4, R6: a leaver's safeguarding case had no DSL or deputy to go to; leaders are told at once
    Category.SAFEGUARDING_NO_DSL: Route(
        frozenset({R.SLT, R.PRINCIPAL}), urgent=True, school_channel=False
    ),
    # R6: a school with accounts but no DSL or deputy DSL in post (until one is named)
    Category.SCHOOL_WITHOUT_DSL: Route(frozenset({R.SLT, R.PRINCIPAL}), school_channel=False),
    Category.REMOVAL_OVERDUE: Route(frozenset({R.SLT, R.DSL, R.MODERATOR}), urgent=True),
    Category.CLASSIFIER_DOWN: Route(frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True),
    Category.CONNECTOR_AUTH: Route(frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True),
    Category.DELIVERY_FAILED: Route(frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True),
    Category.ITEM_QUARANTINED: Route(
        frozenset({R.IT_ADMIN}), school_channel=False, it_channel=True
    ),
}

# One case per item: its category is the highest in this order; the others are recorded.
CATEGORY_PRIORITY: tuple[Category, ...] = (
    Category.SAFEGUARDING,
    Category.THREAT,
    Category.PERSONAL_DATA,
    Category.ABUSIVE,
    Category.MEDIA_ENQUIRY,
    Category.NEGATIVE_MENTION,
    Category.NEEDS_RESPONSE,
)

# Who may see restricted (safeguarding) content.
RESTRICTED_VIEWERS: frozenset[Role] = frozenset({R.DSL, R.DEPUTY_DSL})

# R12: who may see a personal-data case's content in full; shared channels and everyone
# else are told in words what was exposed (``redaction.withheld_note``).
PERSONAL_DATA_VIEWERS: frozenset[Role] = ROUTES[Category.PERSONAL_DATA].roles

# R6: who is told of a safeguarding concern (or a threat) in the DSL's place when no DSL or
# deputy DSL is in post for the school: the DSL's line of escalation, "the DSL role and above".
# In this order, the first with anyone in post: the principal (headteacher), then SLT.
NO_DSL_STAND_INS: tuple[frozenset[Role], ...] = (frozenset({R.PRINCIPAL}), frozenset({R.SLT}))

# Who is told when a response target is missed (R2) or a case is escalated.
ESCALATION_ROLES: frozenset[Role] = frozenset({R.SLT, R.PRINCIPAL})

# Who gets the weekly digest by email when a digest names no recipients (R2, R3, R8).
DIGEST_ROLES: frozenset[Role] = frozenset({R.SLT, R.PRINCIPAL})


def case_holder(
    directory: StaffDirectory, category: Category, school_key: str | None
) -> Person | None:
    """Who a new case of ``category`` is given to at once (R11), or None: the general queue.

    The school's own holder comes first (a head before the trust's CEO), then by staff id.
    """
    people = directory.with_roles(ROUTES[category].held_by, school_key)
    if not people:
        return None
    return min(people, key=lambda p: (not p.schools, p.key))


def route_for(category: Category) -> Route:
    """The route of ``category``."""
    return ROUTES[category]


def is_urgent(categories: Iterable[Category]) -> bool:
    """Whether a case with these categories is told at once (skips batching and quiet hours)."""
    return any(ROUTES[category].urgent for category in categories)


def roles_for(categories: frozenset[Category]) -> frozenset[Role]:
    """Everyone told about an item with these categories (union of their routes)."""
    roles: set[Role] = set()
    for category in categories:
        roles |= ROUTES[category].roles
    return frozenset(roles)
