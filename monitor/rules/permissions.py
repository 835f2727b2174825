"""Who may do what to a case, as data (checked for the CLI, Slack buttons and the dashboard)."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.constants import ActionKind, CaseState, Category, Role
from monitor.rules.routing import RESTRICTED_VIEWERS, ROUTES

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
}

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
) -> str | None:
    """Why someone with ``roles`` may not do ``action`` to this case; None when they may."""
    held = frozenset(roles)
    if restricted and not held & RESTRICTED_VIEWERS:
        return "this is a safeguarding case: only the DSL and deputy DSLs can act on it"
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
    target = STATE_AFTER[action]
    if state == CaseState.CLOSED and action not in PLATFORM_ACTIONS:
        return "the case is closed"
    if target is not None and not can_transition(state, target):
        return f"a {state.value} case cannot become {target.value}"
    return None
