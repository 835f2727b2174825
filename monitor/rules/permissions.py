"""Who may do what to a case, as data (checked for the CLI, Slack buttons and the dashboard)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.constants import ActionKind, CaseState, Category, ExportKind, Role
from monitor.rules.routing import RESTRICTED_VIEWERS, ROUTES
from monitor.rules.visibility import ContentAccess, is_safeguarding

R = Role
A = ActionKind
MODERATING = frozenset({R.MODERATOR, R.COMMS, R.DSL, R.DEPUTY_DSL, R.PRINCIPAL, R.SLT})
EVERY_ROLE = frozenset(Role)

ACTION_ROLES: dict[ActionKind, frozenset[Role]] = {
    A.HIDE: MODERATING,
    A.UNHIDE: MODERATING,
    A.REMOVE: MODERATING,
    A.BLOCK: MODERATING,
    A.MUTE: MODERATING,
    A.REPORT: MODERATING,
    A.REPLY: frozenset({R.COMMS, R.PRINCIPAL, R.SLT}),  # public replies: comms and leaders only
    A.ACKNOWLEDGE: EVERY_ROLE,
    A.DISMISS: MODERATING,
    A.ASSIGN: frozenset({R.SLT, R.PRINCIPAL, R.DSL, R.DEPUTY_DSL, R.MODERATOR, R.COMMS}),
    A.ESCALATE: EVERY_ROLE,
    A.MARK_RESPONDED: frozenset({R.COMMS, R.MODERATOR, R.PRINCIPAL, R.SLT}),
    A.CLOSE: frozenset({R.SLT, R.PRINCIPAL, R.DSL, R.DEPUTY_DSL, R.MODERATOR, R.COMMS, R.IT_ADMIN}),
    # R9: senior leaders and the DSL decide on a police report
    A.POLICE_REPORTED: frozenset({R.DSL, R.DEPUTY_DSL, R.SLT, R.PRINCIPAL}),
    A.POLICE_NOT_NEEDED: frozenset({R.DSL, R.DEPUTY_DSL, R.SLT, R.PRINCIPAL}),
}

# Actions carried out on the platform by the worker (the rest only change the case).
PLATFORM_ACTIONS: frozenset[ActionKind] = frozenset(
    {A.HIDE, A.UNHIDE, A.REMOVE, A.BLOCK, A.MUTE, A.REPORT, A.REPLY}
)

# Case state after an action is carried out (None: unchanged).
STATE_AFTER: dict[ActionKind, CaseState | None] = {
    A.HIDE: CaseState.ACTIONED,
    A.UNHIDE: None,
    A.REMOVE: CaseState.ACTIONED,
    A.BLOCK: CaseState.ACTIONED,
    A.MUTE: CaseState.ACTIONED,
    A.REPORT: CaseState.ACTIONED,
    A.REPLY: CaseState.RESPONDED,
    A.ACKNOWLEDGE: CaseState.ACKNOWLEDGED,
    A.DISMISS: CaseState.DISMISSED,
    A.ASSIGN: None,
    A.ESCALATE: CaseState.ESCALATED,
    A.MARK_RESPONDED: CaseState.RESPONDED,
    A.CLOSE: CaseState.CLOSED,
    A.POLICE_REPORTED: None,
    A.POLICE_NOT_NEEDED: None,
}

# The outcome each police action records on the case's "consider a police report" step (R9).
POLICE_OUTCOMES: dict[ActionKind, str] = {
    A.POLICE_REPORTED: "reported",
    A.POLICE_NOT_NEEDED: "not_needed",
}

# Standing problems that the scheduled checks close once fixed (R3, R6, R13): closing or
# dismissing one by hand would hide a violation that is still there.
SELF_CLOSING: frozenset[Category] = frozenset(
    {
        Category.TWO_ADMINS,
        Category.ACCOUNT_REGISTER,
        Category.SAFEGUARDING_NO_DSL,
        Category.SCHOOL_WITHOUT_DSL,
    }
)

S = CaseState
TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    S.NEW: frozenset({S.ACKNOWLEDGED, S.ACTIONED, S.RESPONDED, S.ESCALATED, S.DISMISSED, S.CLOSED}),
    S.ACKNOWLEDGED: frozenset({S.ACTIONED, S.RESPONDED, S.ESCALATED, S.DISMISSED, S.CLOSED}),
    S.ACTIONED: frozenset({S.RESPONDED, S.ESCALATED, S.DISMISSED, S.CLOSED}),
    S.ESCALATED: frozenset({S.ACKNOWLEDGED, S.ACTIONED, S.RESPONDED, S.DISMISSED, S.CLOSED}),
    S.RESPONDED: frozenset({S.ESCALATED, S.CLOSED}),
    S.DISMISSED: frozenset({S.ESCALATED, S.CLOSED}),
    S.CLOSED: frozenset(),
}


def can_transition(current: CaseState, new: CaseState) -> bool:
    """Whether a case may move from ``current`` to ``new`` (staying put is always allowed)."""
    return new == current or new in TRANSITIONS[current]


def refusal(
    roles: Iterable[Role],
    action: ActionKind,
    *,
    category: Category,
    restricted: bool,
    state: CaseState,
    serves_school: bool = True,
    police_step: str | None = None,
    # R6: alerted in the DSL's place right now (``restricted_access`` is STAND_IN)
    stand_in: bool = False,
) -> str | None:
    """Why someone with ``roles`` may not do ``action`` to this case; None when they may."""
    held = frozenset(roles)
    if not serves_school:
        return "this case belongs to a school you do not serve"
    if restricted and stand_in:
        # no DSL or deputy in post: they act exactly as the DSL would, no more (a principal's
        # own right to reply publicly does not extend to a disclosure)
        held = RESTRICTED_VIEWERS
    elif restricted and not held & RESTRICTED_VIEWERS:
        return (
            "this is a safeguarding case: only the DSL and deputy DSLs can act on it "
            "(or, while none is in post, whoever is alerted in their place)"
        )
    allowed = ACTION_ROLES[action]
    route_roles = ROUTES[category].roles
    # IT may handle its own operational cases (gaps, credentials), not content
    if (
        R.IT_ADMIN in held
        and R.IT_ADMIN in route_roles
        and action in {A.ACKNOWLEDGE, A.CLOSE, A.ASSIGN, A.ESCALATE}
    ):
        pass
    elif not held & allowed:
        needed = ", ".join(sorted(r.value for r in allowed))
        return f"{action.value} needs one of these roles: {needed}"
    if action in POLICE_OUTCOMES:
        # a record of a decision, allowed even once the case is closed
        return None if police_step else "this case has no police report step"
    target = STATE_AFTER[action]
    if state == CaseState.CLOSED and action not in PLATFORM_ACTIONS:
        return "the case is closed"
    if category in SELF_CLOSING and action in {A.CLOSE, A.DISMISS}:
        return "this case closes itself once the problem is fixed"
    if target is not None and not can_transition(state, target):
        return f"a {state.value} case cannot become {target.value}"
    return None


# ------------------------------------------------------------- staff (R4)

# Who may record a leaver (and so hand over their roles and cases).
STAFF_MANAGERS: frozenset[Role] = frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN})


def staff_change_refusal(roles: Iterable[Role]) -> str | None:
    """Why someone with ``roles`` may not record a leaver; None when they may."""
    if not frozenset(roles) & STAFF_MANAGERS:
        needed = ", ".join(sorted(r.value for r in STAFF_MANAGERS))
        return f"recording a leaver needs one of these roles: {needed}"
    return None


# ------------------------------------------------------------- assignment


# Who may be given a safeguarding case: only those who may see it (R6).
SAFEGUARDING_ASSIGNEES: frozenset[Role] = RESTRICTED_VIEWERS


def assignee_refusal(
    assignee: str,
    *,
    roles: Iterable[Role],
    in_post: bool,
    serves_school: bool,
    safeguarding: bool,
) -> str | None:
    """Why a case may not be assigned to ``assignee``; None when it may."""
    if not in_post:
        return f"{assignee} is not an active member of staff"
    if not serves_school:
        return f"{assignee} does not serve this case's school"
    if safeguarding and not frozenset(roles) & SAFEGUARDING_ASSIGNEES:
        needed = ", ".join(sorted(r.value for r in SAFEGUARDING_ASSIGNEES))
        return (
            f"{assignee} cannot be given a safeguarding case: it needs one of these roles: {needed}"
        )
    return None


@dataclass(frozen=True)
class Candidate:
    """Someone a case could be given to, as ``assignee_refusal`` judges them."""

    key: str
    roles: frozenset[Role]
    in_post: bool
    serves_school: bool


def handover_assignee(
    *,
    leaver: str,
    successor: Candidate | None,
    admins: Sequence[Candidate],
    dsls: Sequence[Candidate],
    safeguarding: bool,
) -> str | None:
    """Who takes a leaver's open case (R4, R6); None: it stays unassigned.

    The successor first; then, for a safeguarding case, the school's other DSLs and deputies
    (a successor without the role never gets one), for any other case the account's other
    administrators. Everyone must pass ``assignee_refusal``.
    """
    offered = [*([successor] if successor else []), *(dsls if safeguarding else admins)]
    for candidate in offered:
        if candidate.key != leaver and (
            assignee_refusal(
                candidate.key,
                roles=candidate.roles,
                in_post=candidate.in_post,
                serves_school=candidate.serves_school,
                safeguarding=safeguarding,
            )
            is None
        ):
            return candidate.key
    return None


# ------------------------------------------------------------- exports (R6, R7, R14)

E = ExportKind
# Evidence of a safeguarding case only for the DSL and deputies (R6); other evidence also for
# senior leaders and IT, who pass it to the LADO or police (R7); a subject-access export for
# those who answer data-protection requests (R14).
EXPORT_ROLES: dict[ExportKind, frozenset[Role]] = {
    E.SAFEGUARDING_EVIDENCE: RESTRICTED_VIEWERS,
    E.EVIDENCE: frozenset({R.DSL, R.DEPUTY_DSL, R.SLT, R.PRINCIPAL, R.IT_ADMIN}),
    E.SUBJECT_ACCESS: frozenset({R.SLT, R.PRINCIPAL, R.DSL, R.IT_ADMIN}),
}
EXPORT_NAMES: dict[ExportKind, str] = {
    E.SAFEGUARDING_EVIDENCE: "exporting the evidence of a safeguarding case",
    E.EVIDENCE: "exporting a case's evidence",
    E.SUBJECT_ACCESS: "a subject-access export",
}


def evidence_export_kind(*, category: Category, restricted: bool) -> ExportKind:
    """Which export a case's evidence is: a safeguarding case's is the DSL's alone."""
    if is_safeguarding(category=category, restricted=restricted):
        return E.SAFEGUARDING_EVIDENCE
    return E.EVIDENCE


def export_refusal(
    roles: Iterable[Role],
    kind: ExportKind,
    *,
    serves_school: bool = True,
    content: ContentAccess | None = None,
) -> str | None:
    """Why someone with ``roles`` may not make this export; None when they may.

    ``content``: what ``visibility.may_see_content`` said of the requester and the case; for
    a safeguarding case's evidence it decides (a stand-in for a DSL exports as the DSL would).
    """
    if not serves_school:
        return "this case belongs to a school you do not serve"
    allowed = EXPORT_ROLES[kind]
    if kind is E.SAFEGUARDING_EVIDENCE and content is not None:
        seen = content in {ContentAccess.DSL, ContentAccess.STAND_IN}
    else:
        seen = bool(frozenset(roles) & allowed)
    if not seen:
        needed = ", ".join(sorted(r.value for r in allowed))
        return f"{EXPORT_NAMES[kind]} needs one of these roles: {needed}"
    return None
