"""Turning a stored case into what people are shown (Slack message, email text)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.constants import CaseState, Category
from monitor.display import when
from monitor.notify.messages import CaseMessage
from monitor.storage import tables as t

# Which Slack buttons a case offers, by category (none once a case is finished).
BUTTONS: dict[Category, tuple[str, ...]] = {
    Category.ABUSIVE: ("hide", "acknowledge", "escalate", "not_abusive"),
    Category.PERSONAL_DATA: ("hide", "acknowledge", "escalate"),
    Category.THREAT: ("hide", "acknowledge", "escalate"),
    Category.SAFEGUARDING: ("hide", "acknowledge", "escalate"),
}
DEFAULT_BUTTONS: tuple[str, ...] = ("acknowledge", "escalate")
FINISHED = {CaseState.CLOSED.value, CaseState.DISMISSED.value, CaseState.RESPONDED.value}
HISTORY_LIMIT = 8


def case_message(session: Session, case: t.Case, *, show_content: bool) -> CaseMessage:
    """The Slack view of ``case``; without ``show_content`` nothing of the content is included."""
    item = session.get(t.Item, case.item_id) if case.item_id else None
    account = session.get(t.Account, case.account_id) if case.account_id else None
    school = session.get(t.School, case.school_id) if case.school_id else None
    assessment = (
        session.scalars(select(t.Assessment).where(t.Assessment.item_id == item.id)).one_or_none()
        if item
        else None
    )
    timezone = school.timezone if school else "Europe/London"
    events = session.scalars(
        select(t.AuditEvent).where(t.AuditEvent.case_id == case.id).order_by(t.AuditEvent.seq)
    ).all()
    history = tuple(
        f"{when(e.at, timezone)}: {e.action.replace('case.', '').replace('.', ' ')} by {e.actor}"
        for e in events
    )[-HISTORY_LIMIT:]
    buttons: tuple[str, ...] = ()
    if case.state not in FINISHED and (item is not None or case.category not in BUTTONS):
        buttons = (
            BUTTONS.get(Category(case.category), DEFAULT_BUTTONS)
            if item is not None
            else DEFAULT_BUTTONS
        )
    if not show_content:
        return CaseMessage(
            case_id=case.id,
            school=school.name if school else "Trust",
            account=account.key if account else "",
            platform=account.platform if account else "",
            author_handle="",
            text="",
            url=None,
            category=case.category,
            severity=case.severity,
            state=case.state,
            restricted=True,
            history=(),
            buttons=(),
        )
    return CaseMessage(
        case_id=case.id,
        school=school.name if school else "Trust",
        account=account.key if account else "",
        platform=account.platform if account else "",
        author_handle=item.author_handle if item else "",
        text=item.text if item else case.title,
        url=item.url if item else None,
        category=case.category,
        severity=case.severity,
        state=case.state + (" (cannot hide: reported and blocked)" if case.cannot_hide else ""),
        scores={k: float(v) for k, v in (assessment.scores if assessment else {}).items()},
        rules=tuple(
            str(m.get("rule_id"))
            for m in (assessment.matches if assessment else [])
            if m.get("rule_id")
        ),
        due_at_text=when(case.due_at, timezone) if case.due_at else None,
        restricted=False,
        history=history,
        buttons=buttons,
    )


def email_text(session: Session, case: t.Case, *, kind: str) -> tuple[str, str]:
    """Subject and plain-text body of an email about ``case`` (for people who may see it)."""
    message = case_message(session, case, show_content=True)
    lead = {
        "case_opened": "A new case needs attention.",
        "reminder": "Reminder: this case is due soon.",
        "breach": "The response target for this case has been missed and it is escalated to you.",
    }.get(kind.split(":")[0], "This case has changed.")
    subject = f"[{case.severity.upper()}] {case.title} (case {case.id})"
    lines = [
        lead,
        "",
        f"School: {message.school}",
        f"Account: {message.account} ({message.platform})",
        f"Category: {case.category}    Severity: {case.severity}    State: {case.state}",
    ]
    if message.due_at_text:
        lines.append(f"Due: {message.due_at_text}")
    if case.police_step == "pending":
        lines.append("Consider a police report (threatening content, R9).")
    if message.author_handle:
        lines += [
            "",
            f"Author: @{message.author_handle}",
            f"Link: {message.url or ''}",
            "",
            "Text:",
            message.text,
        ]
    if message.rules:
        lines += ["", "Rules that fired: " + ", ".join(message.rules)]
    lines += ["", f"Act on it: monitor case {case.id} --do acknowledge --as YOUR_STAFF_ID"]
    return subject, "\n".join(lines)
