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


PAGE_ROLES: dict[Page, frozenset[Role]] = {
    # who answers for the record as a whole: leaders and IT (R7, R14)
    Page.AUDIT_LOG: frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN}),
    # account health, administrators and approvals: leaders, IT and comms (R3, R13)
    Page.ACCOUNTS: frozenset({R.SLT, R.PRINCIPAL, R.IT_ADMIN, R.COMMS}),
}
# the audit log covers every school: only staff who serve the whole trust read it
TRUST_WIDE_ONLY: frozenset[Page] = frozenset({Page.AUDIT_LOG})
PAGE_NAMES: dict[Page, str] = {Page.AUDIT_LOG: "the audit log", Page.ACCOUNTS: "accounts"}


def page_refusal(roles: Iterable[Role], page: Page, *, trust_wide: bool) -> str | None:
    """Why someone with ``roles`` may not open ``page``; None when they may."""
    allowed = PAGE_ROLES[page]
    if not frozenset(roles) & allowed:
        needed = ", ".join(sorted(r.value for r in allowed))
        return f"{PAGE_NAMES[page]} needs one of these roles: {needed}"
    if page in TRUST_WIDE_ONLY and not trust_wide:
        return f"{PAGE_NAMES[page]} covers every school: it is for staff who serve the whole trust"
    return None
