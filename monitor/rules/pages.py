"""Who may open the web workplace's overview pages (the audit log, accounts and compliance)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from monitor.constants import Role

R = Role


class Page(StrEnum):
    """Overview pages beyond the queue and case pages (those follow ``permissions.refusal``)."""

    AUDIT_LOG = "audit_log"
    ACCOUNTS = "accounts"
    TRUST_DIGEST = "trust_digest"  # the weekly digest of every school
    SCHOOL_DIGEST = "school_digest"  # one school's weekly digest
    STAFF = "staff"  # the staff register: roles, schools, leaving dates
    HANDOVER = "handover"  # recording a leaver: preview and confirm (R4)
    POSTS = "posts"  # the scheduler's calendar and drafts of a school (R16)
    POST_DRAFTING = "post_drafting"  # writing and changing a school's draft posts (R16)


PAGE_ROLES: dict[Page, frozenset[Role]] = {
    # who answers for the record as a whole: leaders and IT (R7, R14)
    Page.AUDIT_LOG: frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN}),
    # account health, administrators and approvals: leaders, IT and comms (R3, R13)
    Page.ACCOUNTS: frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN, R.COMMS}),
    # the weekly digest is written for senior leaders (its recipients)
    Page.TRUST_DIGEST: frozenset({R.SLT, R.PRINCIPAL}),
    Page.SCHOOL_DIGEST: frozenset({R.SLT, R.PRINCIPAL}),
    Page.STAFF: frozenset(Role),
    # R4: the administrators' managers control what happens to a leaver's accounts
    Page.HANDOVER: frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN}),
    # R16: the comms team plans the school's posts, leaders approve them (approval itself
    # follows rules.posting.may_approve: an approver outside these roles still reads a draft)
    Page.POSTS: frozenset({R.COMMS, R.SLT, R.PRINCIPAL}),
    Page.POST_DRAFTING: frozenset({R.COMMS, R.SLT, R.PRINCIPAL}),
}
# the audit log covers every school: only staff who serve the whole trust read it
TRUST_WIDE_ONLY: frozenset[Page] = frozenset({Page.AUDIT_LOG, Page.TRUST_DIGEST})
PAGE_NAMES: dict[Page, str] = {
    Page.AUDIT_LOG: "the audit log",
    Page.ACCOUNTS: "accounts",
    Page.TRUST_DIGEST: "the trust's digest",
    Page.SCHOOL_DIGEST: "a school's digest",
    Page.STAFF: "the staff register",
    Page.HANDOVER: "recording a leaver",
    Page.POSTS: "the school's posts",
    Page.POST_DRAFTING: "writing the school's posts",
}


def page_refusal(
    roles: Iterable[Role], page: Page, *, trust_wide: bool, serves_school: bool = True
) -> str | None:
    """Why someone with ``roles`` may not open ``page``; None when they may."""
    if not serves_school:
        return "that school is not one you serve"
    allowed = PAGE_ROLES[page]
    if not frozenset(roles) & allowed:
        needed = ", ".join(sorted(r.value for r in allowed))
        return f"{PAGE_NAMES[page]} needs one of these roles: {needed}"
    if page in TRUST_WIDE_ONLY and not trust_wide:
        return f"{PAGE_NAMES[page]} covers every school: it is for staff who serve the whole trust"
    return None
