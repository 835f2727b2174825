"""Turning a stored case into what people are shown (Slack message, email text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import Stream
from monitor.constants import AlertKind, CaseState, Category, Platform
from monitor.display import when
from monitor.notify.messages import (
    NO_DSL_NOTICE,
    PERSONAL_DATA_NOTICE,
    RESTRICTED_NOTICE,
    CaseMessage,
)
from monitor.rules.buttons import CaseFacts, case_buttons
from monitor.rules.redaction import WITHHELD_TITLES, withheld_note
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_of

FINISHED = {CaseState.CLOSED.value, CaseState.DISMISSED.value, CaseState.RESPONDED.value}
HISTORY_LIMIT = 8
# Audit actors that are the monitor itself rather than a member of staff.
MONITOR_ACTORS = frozenset({"policy", "worker", "system"})
MONITOR_NAME = "the monitor"
# What a case becoming each state is called in its history and thread notes.
STATE_WORDS: dict[str, str] = {
    CaseState.NEW.value: "Reopened",
    CaseState.ACKNOWLEDGED.value: "Acknowledged",
    CaseState.ACTIONED.value: "Action taken on the platform",
    CaseState.RESPONDED.value: "Responded to",
    CaseState.ESCALATED.value: "Escalated",
    CaseState.DISMISSED.value: "Marked not a concern",
    CaseState.CLOSED.value: "Closed",
}
# Thread notes for alert kinds that are not a plain state change.
KIND_NOTES: dict[str, str] = {
    "reminder": "Reminder: the response is due soon.",
    "breach": "Response target missed: escalated to senior leaders.",
    "escalated": "Escalated: senior leaders have been told.",
    "reassessed": "Re-assessed: the category or severity changed.",
    AlertKind.HANDLING_REMINDER: "Reminder: nobody has acted on this yet.",
    AlertKind.HANDLING_MISSED: "Nobody acted on this by its handling target: escalated to senior leaders.",
    AlertKind.REMOVAL_MISSED: "Still not hidden, removed or reported a day after it was found: "
    "escalated to senior leaders.",
}
ESCALATION_KINDS = frozenset(
    {
        AlertKind.BREACH,
        AlertKind.ESCALATED,
        AlertKind.HANDLING_MISSED,
        AlertKind.REMOVAL_MISSED,
    }
)
# R6: what someone told in an absent DSL's place reads about a safeguarding case they may act on
NO_DSL_NEXT_STEP = (
    "You may act on it as the DSL would while none is in post, but it can be assigned only to "
    "a DSL or deputy DSL: name one for the school (the dsl or deputy_dsl role, or routing.dsl) "
    "and they can take it at once."
)


def staff_names(session: Session, keys: Iterable[str]) -> dict[str, str]:
    """Display names for audit actors: staff names, "the monitor" for the policy and worker."""
    wanted = {key for key in keys if key and key not in MONITOR_ACTORS}
    names = dict.fromkeys(MONITOR_ACTORS, MONITOR_NAME)
    if wanted:
        rows = session.execute(select(t.Staff.key, t.Staff.name).where(t.Staff.key.in_(wanted)))
        names.update((str(key), str(name)) for key, name in rows)
    return names


def _label(value: object) -> str:
    return str(value or "").replace("_", " ").strip()


def history_line(event: t.AuditEvent, names: Mapping[str, str], timezone: str) -> str:
    """One line of a case's history: when, what and who (``Hide requested by Dan Murphy``)."""
    details = event.details if isinstance(event.details, dict) else {}
    action = event.action
    if action == "case.opened":
        what = "Opened"
    elif action == "case.state":
        to = str(details.get("to", ""))
        what = STATE_WORDS.get(to, f"Now {_label(to)}")
    elif action == "case.assigned":
        assignee = details.get("to")
        what = (
            f"Assigned to {names.get(str(assignee), str(assignee))}" if assignee else "Unassigned"
        )
    elif action.startswith("action.") and details.get("action"):
        step = action.removeprefix("action.")
        what = f"{_label(details['action']).capitalize()} {_label(step)}"
    else:
        what = _label(action.replace(".", " ")).capitalize()
    who = names.get(event.actor, event.actor)
    return f"{when(event.at, timezone)}: {what} by {who}"


def thread_note(
    session: Session,
    case: t.Case,
    updates: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    show_content: bool,
) -> str | None:
    """The thread reply for updates (alert kind, payload) of a posted case message, if any.

    None when every update is a state change a Slack button click already announced there,
    or one that only edits the message (``quiet``).
    """
    specific: list[str] = []
    announced = 0
    names = staff_names(session, (str(payload.get("actor", "")) for _, payload in updates))
    # an escalation's own note says more than "Escalated by ..."
    escalation_noted = any(kind.split(":")[0] in ESCALATION_KINDS for kind, _ in updates)
    for kind, payload in updates:
        base = kind.split(":")[0]
        if base == AlertKind.STATE and payload.get("state"):
            if (
                payload.get("announced")
                or payload.get("quiet")
                or (escalation_noted and payload["state"] == CaseState.ESCALATED.value)
            ):
                announced += 1
                continue
            state = str(payload["state"])
            words = STATE_WORDS.get(state, f"Now {_label(state)}")
            actor = str(payload.get("actor", ""))
            note = f"{words} by {names.get(actor, actor)}." if show_content else f"{words}."
        elif base in KIND_NOTES:
            note = KIND_NOTES[base]
        elif base == "still_public" and case.details.get("still_public_note"):
            note = str(case.details["still_public_note"])
        else:
            continue
        if note not in specific:
            specific.append(note)
    if specific:
        return "\n".join(specific)
    if announced == len(updates):
        return None
    return f"Updated: now {_label(case.state)}."


def case_facts(case: t.Case, item: t.Item | None, account: t.Account | None) -> CaseFacts:
    """What the buttons of ``case`` depend on (``monitor.rules.buttons``)."""
    try:
        platform = Platform(account.platform) if account else None
    except ValueError:
        platform = None
    return CaseFacts(
        category=Category(case.category),
        state=CaseState(case.state),
        has_item=item is not None,
        platform=platform,
        moderates=item is not None and item.stream == Stream.COMMUNITY.value,
        cannot_hide=case.cannot_hide,
        hidden=item is not None and item.visibility == "hidden",
        police_step=case.police_step,
        responded=case.responded_at is not None,
        assigned=case.assignee_id is not None,
    )


def case_message(
    session: Session,
    case: t.Case,
    *,
    show_content: bool,
    no_dsl: bool = False,
    case_url: str | None = None,
) -> CaseMessage:
    """The Slack view of ``case``; without ``show_content`` nothing of the content is included.

    ``no_dsl``: the recipient is told in the DSL's place (none in post, R6); the message says
    so first and offers them the DSL's buttons, since they may act on it as the DSL would.
    """
    item = session.get(t.Item, case.item_id) if case.item_id else None
    account = session.get(t.Account, case.account_id) if case.account_id else None
    school = school_of(session, case)
    assessment = (
        session.scalars(select(t.Assessment).where(t.Assessment.item_id == item.id)).one_or_none()
        if item
        else None
    )
    timezone = school.timezone if school else "Europe/London"
    events = session.scalars(
        select(t.AuditEvent).where(t.AuditEvent.case_id == case.id).order_by(t.AuditEvent.seq)
    ).all()[-HISTORY_LIMIT:]
    assignees = {str(e.details.get("to")) for e in events if e.action == "case.assigned"}
    names = staff_names(session, {e.actor for e in events} | assignees)
    history = tuple(history_line(e, names, timezone) for e in events)
    buttons = case_buttons(case_facts(case, item, account))
    notice = NO_DSL_NOTICE.format(school=school.name if school else "the trust") if no_dsl else None
    if not show_content:
        return CaseMessage(
            withheld=withheld_note(
                case.case_category, _rule_ids(assessment), holder=_owner(session, case)
            ),
            withheld_title=WITHHELD_TITLES.get(case.case_category),
            owner=_owner(session, case),
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
            case_url=case_url,
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
        rules=_rule_ids(assessment),
        due_at_text=when(case.due_at, timezone) if case.due_at else None,
        restricted=False,
        history=history,
        buttons=buttons,
        notice=notice,
        owner=_owner(session, case),
        private=case.restricted,
        case_url=case_url,
    )


def _rule_ids(assessment: t.Assessment | None) -> tuple[str, ...]:
    return tuple(
        str(m.get("rule_id"))
        for m in (assessment.matches if assessment else [])
        if m.get("rule_id")
    )


def _owner(session: Session, case: t.Case) -> str | None:
    staff = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
    return staff.name if staff else None


def email_text(
    session: Session,
    case: t.Case,
    *,
    kind: str,
    show_content: bool = True,
    no_dsl: bool = False,
    content_free: bool = False,
    case_url: str | None = None,
) -> tuple[str, str]:
    """Subject and plain-text body of an email about ``case``; restricted: no content at all.

    ``content_free``: the recipient may see the content, but the email does not carry it
    (a safeguarding case, R6): it says what needs them and where to read it.
    """
    opens = f"\n\nOpen the case page: {case_url}" if case_url else ""
    if show_content and content_free:
        school = school_of(session, case)
        where = case_url or "the monitor's Slack message to you"
        escalated = kind.split(":")[0] in ESCALATION_KINDS
        lines = [
            *(
                [NO_DSL_NOTICE.format(school=school.name if school else "the trust"), ""]
                if no_dsl
                else []
            ),
            (
                f"Case {case.id} at {school.name if school else 'the trust'} has been escalated "
                "and needs you."
                if escalated
                else f"A safeguarding concern at {school.name if school else 'the trust'} "
                "needs the DSL."
            ),
            "",
            "Its content is not sent by email. Read it and act on it here:",
            where,
            "",
            f"Act on it: monitor case {case.id} --do acknowledge --as YOUR_STAFF_ID",
            *([NO_DSL_NEXT_STEP] if no_dsl else []),
        ]
        subject = f"[{case.severity.upper()}] Case {case.id} needs the DSL"
        return subject + (": no DSL in post" if no_dsl else ""), "\n".join(lines)
    if not show_content:
        school = school_of(session, case)
        shown = case_message(session, case, show_content=False)
        if shown.withheld:
            withheld = shown.withheld
            return (
                f"Case {case.id}: {(shown.withheld_title or PERSONAL_DATA_NOTICE).lower()}",
                f"Case {case.id} at {school.name if school else 'the trust'}. {withheld}" + opens,
            )
        return (
            f"Case {case.id}: {RESTRICTED_NOTICE.lower()}",
            f"Case {case.id} at {school.name if school else 'the trust'} has been escalated "
            "to the DSL. Its details are visible to the safeguarding team only." + opens,
        )
    message = case_message(session, case, show_content=True, no_dsl=no_dsl)
    lead = {
        "case_opened": "A new case needs attention.",
        "reminder": "Reminder: this case is due soon.",
        "breach": "The response target for this case has been missed and it is escalated to you.",
        "handling_reminder": KIND_NOTES["handling_reminder"],
        "handling_missed": "Nobody acted on this case by its handling target and it is "
        "escalated to you.",
        "removal_missed": KIND_NOTES["removal_missed"],
        "still_public": str(case.details.get("still_public_note", "This case has changed.")),
    }.get(kind.split(":")[0], "This case has changed.")
    subject = f"[{case.severity.upper()}] {case.title} (case {case.id})"
    if message.notice:
        subject += ": no DSL in post"
    lines = [
        *([message.notice, ""] if message.notice else []),
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
    if case_url:
        lines += ["", f"Open the case page: {case_url}"]
    lines += ["", f"Act on it: monitor case {case.id} --do acknowledge --as YOUR_STAFF_ID"]
    if message.notice and case.restricted:
        # R6: they act in the DSL's place, yet only a DSL or deputy may be given the case
        lines.append(NO_DSL_NEXT_STEP)
    return subject, "\n".join(lines)
