"""Slack buttons follow the case and the platform (R5, R9, R11), as table rows."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.constants import CaseState, Category, Platform
from monitor.notify.messages import BUTTON_ACTIONS
from monitor.rules.buttons import CaseFacts, case_buttons

C = Category
S = CaseState
P = Platform


def facts(category: Category, platform: Platform | None = P.BLUESKY, **kw: Any) -> CaseFacts:
    return CaseFacts(
        category=category,
        state=kw.pop("state", S.NEW),
        has_item=kw.pop("has_item", True),
        platform=platform,
        **kw,
    )


ROWS = [
    # abuse where the platform hides: Hide; once hidden: Unhide, and no "not abusive"
    (facts(C.ABUSIVE), ("hide", "acknowledge", "escalate", "not_abusive")),
    (facts(C.ABUSIVE, hidden=True, state=S.ACTIONED), ("unhide", "escalate")),
    # no Hide where the platform cannot hide: report and block is the action
    (facts(C.ABUSIVE, P.MASTODON), ("report_block", "acknowledge", "escalate", "not_abusive")),
    (facts(C.ABUSIVE, P.REDDIT), ("report_block", "acknowledge", "escalate", "not_abusive")),
    (
        facts(C.ABUSIVE, P.REDDIT, moderates=True),
        ("hide", "acknowledge", "escalate", "not_abusive"),
    ),
    # already reported and blocked: nothing more to press on the platform
    (facts(C.ABUSIVE, P.MASTODON, cannot_hide=True, state=S.ACTIONED), ("escalate", "not_abusive")),
    # Acknowledge gone once acknowledged
    (facts(C.ABUSIVE, state=S.ACKNOWLEDGED), ("hide", "escalate", "not_abusive")),
    # threats get the police step while undecided
    (
        facts(C.THREAT, police_step="pending"),
        ("hide", "police_reported", "police_not_needed", "acknowledge", "escalate"),
    ),
    (facts(C.THREAT, police_step="reported", state=S.ACKNOWLEDGED), ("hide", "escalate")),
    # queries and media enquiries: Reply, Mark responded, Assign to me
    (
        facts(C.NEEDS_RESPONSE),
        ("reply", "mark_responded", "acknowledge", "assign_to_me", "escalate"),
    ),
    (
        facts(C.MEDIA_ENQUIRY, assigned=True, state=S.ACKNOWLEDGED),
        ("reply", "mark_responded", "escalate"),
    ),
    (facts(C.MEDIA_ENQUIRY, state=S.ESCALATED), ("reply", "mark_responded", "assign_to_me")),
    # operational cases and finished cases
    (facts(C.TWO_ADMINS, None, has_item=False), ("acknowledge", "escalate")),
    (facts(C.ABUSIVE, state=S.CLOSED), ()),
    (facts(C.NEEDS_RESPONSE, state=S.RESPONDED), ()),
]


@pytest.mark.parametrize(("case", "buttons"), ROWS)
def test_buttons_follow_the_case(case: CaseFacts, buttons: tuple[str, ...]) -> None:
    assert case_buttons(case) == buttons
    assert set(buttons) <= set(BUTTON_ACTIONS)
