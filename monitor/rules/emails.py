"""Which alerts are emailed, and how much a safeguarding email says (R6), as data (pure).

Email is for what someone must act on: a new case, a reminder, an escalation. A button
click on a case updates its Slack messages in place; it does not send everyone another
email. A safeguarding email carries no content by default (like the safeguarding systems
staff already use): it says a concern needs the DSL and where to read it.
"""

from __future__ import annotations

# Alert kinds (before any ":") that are never emailed: updates after an action is carried out.
SLACK_ONLY_KINDS: frozenset[str] = frozenset({"case_updated"})


def emailed(kind: str) -> bool:
    """True when an alert of ``kind`` goes by email as well as Slack."""
    return kind.split(":")[0] not in SLACK_ONLY_KINDS


def email_shows_content(*, restricted: bool, may_see: bool, include_text: bool) -> bool:
    """Whether an email about a case carries its content (``routing.dsl_email_text``)."""
    if not may_see:
        return False
    return include_text or not restricted
