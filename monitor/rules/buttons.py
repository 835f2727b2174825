"""Which Slack buttons a case shows (R5, R9, R11, R12): they follow the case and the platform.

Pure: the facts of the case are passed in. A button is only offered when pressing it can do
what its label and confirmation say: no Hide where the platform cannot hide, Unhide once
hidden, no Acknowledge once acknowledged, the police step while it is undecided, and the
reply buttons for a query or a media enquiry that still waits for its answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.constants import CaseState, Category, Platform

S = CaseState
C = Category

# Content the school may hide: abuse, threats, exposed personal data, safeguarding.
HIDEABLE: frozenset[Category] = frozenset({C.ABUSIVE, C.THREAT, C.PERSONAL_DATA, C.SAFEGUARDING})
# Cases answered in public: Reply (a template, previewed), Mark responded, Assign to me.
ANSWERED: frozenset[Category] = frozenset({C.NEEDS_RESPONSE, C.MEDIA_ENQUIRY})
# A judgement that the content is harmless (abuse only).
DISMISSIBLE: frozenset[Category] = frozenset({C.ABUSIVE})
# No buttons once the case is finished.
FINISHED: frozenset[CaseState] = frozenset({S.CLOSED, S.DISMISSED, S.RESPONDED})
# Platforms whose API lets the account hide a reply (Mastodon never; Reddit only as a
# moderator of the subreddit, which ``can_hide`` below is told).
HIDES: frozenset[Platform] = frozenset({Platform.BLUESKY})


@dataclass(frozen=True)
class CaseFacts:
    """What the buttons depend on."""

    category: Category
    state: CaseState
    has_item: bool
    platform: Platform | None
    moderates: bool = False  # the account moderates where the item is (Reddit subreddits)
    cannot_hide: bool = False  # an earlier hide found the platform could not
    hidden: bool = False  # the item is hidden now (by the school)
    police_step: str | None = None  # pending, reported, not_needed
    responded: bool = False
    assigned: bool = False


def can_hide(facts: CaseFacts) -> bool:
    """True when a Hide button would hide the item."""
    if facts.cannot_hide or facts.platform is None:
        return False
    return facts.platform in HIDES or (facts.platform is Platform.REDDIT and facts.moderates)


def case_buttons(facts: CaseFacts) -> tuple[str, ...]:
    """The buttons, in order, for a case in this state (none once finished)."""
    if facts.state in FINISHED:
        return ()
    buttons: list[str] = []
    content = facts.has_item and facts.category in HIDEABLE
    if content and facts.hidden:
        buttons.append("unhide")
    elif content and can_hide(facts):
        buttons.append("hide")
    elif content and not facts.cannot_hide:
        buttons.append("report_block")  # the action where the platform cannot hide
    if facts.has_item and facts.category in ANSWERED and not facts.responded:
        buttons += ["reply", "mark_responded"]
    if facts.police_step == "pending":
        buttons += ["police_reported", "police_not_needed"]
    if facts.state is S.NEW:
        buttons.append("acknowledge")
    if facts.category in ANSWERED and not facts.assigned:
        buttons.append("assign_to_me")
    if facts.state is not S.ESCALATED:
        buttons.append("escalate")
    if facts.has_item and facts.category in DISMISSIBLE and not facts.hidden:
        buttons.append("not_abusive")
    return tuple(buttons)
