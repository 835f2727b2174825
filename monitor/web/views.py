"""What the queue and case pages show, read from the database (no permission decisions here:
each "may they?" goes to ``policy_gate``, which asks ``monitor/rules``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from monitor.constants import (
    DEFAULT_TIMEZONE,
    OPEN_CASE_STATES,
    SEVERITY_ORDER,
    ActionKind,
    CaseState,
    Category,
    Platform,
)
from monitor.directory import Directory, Person
from monitor.display import when
from monitor.notify.case_view import history_line, staff_names
from monitor.storage import tables as t
from monitor.web import policy_gate
from monitor.web.policy_gate import CaseFacts

QUEUE_LIMIT = 200
# actions the worker carries out on the platform (the rest only change the case)
PLATFORM_KINDS = frozenset(
    {
        ActionKind.HIDE,
        ActionKind.UNHIDE,
        ActionKind.REMOVE,
        ActionKind.BLOCK,
        ActionKind.MUTE,
        ActionKind.REPORT,
        ActionKind.REPLY,
    }
)


def in_words(delta_seconds: float) -> str:
    """``3 hours``, ``2 days``, ``5 minutes``: a span rounded to its largest unit."""
    seconds = abs(delta_seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def due_words(due_at: datetime | None, now: datetime) -> tuple[str, bool]:
    """(``due in 3 hours`` or ``overdue by 2 days``, overdue?) for a case's due time."""
    if due_at is None:
        return "no response target", False
    delta = (due_at - now).total_seconds()
    if delta < 0:
        return f"overdue by {in_words(delta)}", True
    return f"due in {in_words(delta)}", False


def facts_of(case: t.Case, school_key: str | None) -> CaseFacts:
    """The policy's view of a stored case."""
    return CaseFacts(
        category=Category(case.category),
        restricted=case.restricted,
        state=CaseState(case.state),
        school_key=school_key,
        police_step=case.police_step,
    )


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as given in the query string (empty: no filter)."""

    school: str = ""
    account: str = ""
    platform: str = ""
    category: str = ""
    state: str = ""
    assignee: str = ""
    mine: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilters:
        """Filters from request query parameters; unknown values simply match nothing."""
        return cls(
            **{
                name: str(query.get(name, "")).strip()[:64]
                for name in ("school", "account", "platform", "category", "state", "assignee")
            },
            mine=query.get("mine") in {"1", "on", "true"},
        )

    def query_string(self) -> str:
        """The filters as a query string (for the fragment endpoint and links)."""
        from urllib.parse import urlencode

        pairs = {k: v for k, v in vars(self).items() if v and k != "mine"}
        if self.mine:
            pairs["mine"] = "1"
        return urlencode(pairs)


@dataclass(frozen=True)
class QueueLine:
    """One row of the queue as shown (a safeguarding case's title is never shown here)."""

    case_id: int
    school: str
    account: str
    platform: str
    category: str
    severity: str
    state: str
    title: str
    due: str
    overdue: bool
    assignee: str
    safeguarding: bool
    may_claim: bool


@dataclass(frozen=True)
class FilterChoices:
    """The values each filter offers."""

    schools: list[tuple[str, str]]
    accounts: list[str]
    platforms: list[str]
    categories: list[str]
    states: list[str]
    assignees: list[tuple[str, str]]


def filter_choices(session: Session, person: Person) -> FilterChoices:
    """Schools, accounts and staff this person serves, for the filter form."""
    schools = [
        (key, name)
        for key, name in session.execute(
            select(t.School.key, t.School.name)
            .where(t.School.archived_at.is_(None))
            .order_by(t.School.name)
        )
        if person.serves(key)
    ]
    served = {key for key, _ in schools}
    accounts = [
        key
        for key, school in session.execute(
            select(t.Account.key, t.School.key)
            .join(t.School, t.School.id == t.Account.school_id)
            .where(t.Account.archived_at.is_(None))
            .order_by(t.Account.key)
        )
        if school in served
    ]
    staff = [
        (key, name)
        for key, name in session.execute(
            select(t.Staff.key, t.Staff.name)
            .where(t.Staff.archived_at.is_(None))
            .order_by(t.Staff.name)
        )
    ]
    return FilterChoices(
        schools=schools,
        accounts=accounts,
        platforms=[p.value for p in Platform],
        categories=[c.value for c in Category],
        states=[s.value for s in CaseState if s in OPEN_CASE_STATES],
        assignees=staff,
    )


def _ids(session: Session, column: Any, where: Any) -> list[int]:
    return list(session.scalars(select(column).where(where)))


def _queue_cases(
    session: Session, person: Person, filters: QueueFilters, *, limit: int
) -> list[t.Case] | None:
    """The queue's cases in order, or None when a filter names nothing that exists.

    Gravest first, then most overdue (due time, undated last), then oldest. Each (severity,
    state) pair is one ordered scan of ``ix_cases_queue``, merged here (as
    ``monitor.queue`` does): sorting every open case by a computed rank reads them all,
    which at 100,000 cases takes longer than the page may.
    """
    conditions: list[Any] = []
    if person.schools:
        served = _ids(session, t.School.id, t.School.key.in_(sorted(person.schools)))
        conditions.append(or_(t.Case.school_id.in_(served), t.Case.school_id.is_(None)))
    if filters.school:
        conditions.append(
            t.Case.school_id.in_(_ids(session, t.School.id, t.School.key == filters.school))
        )
    if filters.account:
        conditions.append(
            t.Case.account_id.in_(_ids(session, t.Account.id, t.Account.key == filters.account))
        )
    if filters.platform:
        conditions.append(
            t.Case.account_id.in_(
                _ids(session, t.Account.id, t.Account.platform == filters.platform)
            )
        )
    if filters.category:
        conditions.append(t.Case.category == filters.category)
    if filters.assignee or filters.mine:
        keys = {k for k in (filters.assignee, person.key if filters.mine else "") if k}
        if len(keys) > 1:
            return None
        conditions.append(t.Case.assignee_id.in_(_ids(session, t.Staff.id, t.Staff.key.in_(keys))))
    states = [s.value for s in OPEN_CASE_STATES if not filters.state or s.value == filters.state]
    chosen: list[t.Case] = []
    for severity in sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__, reverse=True):
        wanted = limit - len(chosen)
        if wanted <= 0:
            break
        candidates: list[t.Case] = []
        for state in states:
            base = select(t.Case).where(
                t.Case.severity == severity.value, t.Case.state == state, *conditions
            )
            dated = list(
                session.scalars(
                    base.where(t.Case.due_at.is_not(None))
                    .order_by(t.Case.due_at, t.Case.opened_at, t.Case.id)
                    .limit(wanted)
                )
            )
            candidates += dated
            if len(dated) < wanted:
                candidates += session.scalars(
                    base.where(t.Case.due_at.is_(None))
                    .order_by(t.Case.opened_at, t.Case.id)
                    .limit(wanted - len(dated))
                )
        candidates.sort(
            key=lambda c: (c.due_at is None, c.due_at or c.opened_at, c.opened_at, c.id)
        )
        chosen += candidates[:wanted]
    return chosen


def queue_lines(
    session: Session,
    directory: Directory,
    person: Person,
    filters: QueueFilters,
    *,
    now: datetime,
    limit: int = QUEUE_LIMIT,
) -> list[QueueLine]:
    """Open cases of the schools ``person`` serves: gravest first, then most overdue, then oldest."""
    cases = _queue_cases(session, person, filters, limit=limit)
    if not cases:
        return []
    schools = {row.id: row.key for row in session.execute(select(t.School.id, t.School.key))}
    accounts = {
        row.id: (row.key, row.platform)
        for row in session.execute(select(t.Account.id, t.Account.key, t.Account.platform))
    }
    staff = {
        row.id: (row.key, row.name)
        for row in session.execute(select(t.Staff.id, t.Staff.key, t.Staff.name))
    }
    rows = []
    for case in cases:
        account_key, platform = (
            accounts.get(case.account_id, (None, None)) if case.account_id else (None, None)
        )
        assignee_key, assignee_name = (
            staff.get(case.assignee_id, (None, None)) if case.assignee_id else (None, None)
        )
        rows.append(
            (
                case,
                schools.get(case.school_id) if case.school_id else None,
                account_key,
                platform,
                assignee_key,
                assignee_name,
            )
        )
    lines = []
    for case, school_key, account_key, platform, assignee_key, assignee_name in rows:
        facts = facts_of(case, school_key)
        due, overdue = due_words(case.due_at, now)
        safeguarding = policy_gate.safeguarding(facts)
        lines.append(
            QueueLine(
                case_id=case.id,
                school=school_key or "trust",
                account=account_key or "",
                platform=platform or "",
                category=case.category,
                severity=case.severity,
                state=case.state,
                # the queue never shows a safeguarding case's content, to anyone: the case page
                # does, to those the policy allows, and records that they saw it
                title="Safeguarding concern" if safeguarding else case.title,
                due=due,
                overdue=overdue,
                assignee=assignee_name or "",
                safeguarding=safeguarding,
                may_claim=assignee_key != person.key
                and policy_gate.action_refusal(directory, person, facts, ActionKind.ASSIGN) is None,
            )
        )
    return lines


# ------------------------------------------------------------- the case page


@dataclass(frozen=True)
class Segment:
    """A piece of comment text; ``mark`` when a rule matched it."""

    text: str
    mark: bool = False


def highlight(text: str, spans: Sequence[tuple[int, int]]) -> list[Segment]:
    """``text`` cut into plain and matched pieces (overlapping spans merged)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    pieces: list[Segment] = []
    at = 0
    for start, end in merged:
        if start > at:
            pieces.append(Segment(text[at:start]))
        pieces.append(Segment(text[start:end], mark=True))
        at = end
    if at < len(text) or not pieces:
        pieces.append(Segment(text[at:]))
    return pieces


@dataclass(frozen=True)
class ThreadItem:
    """A post or reply shown with the case."""

    author_handle: str
    author_name: str
    when: str
    url: str
    segments: list[Segment]
    is_case_item: bool = False
    visibility: str = "visible"


# a post in the thread that belongs to a safeguarding case the viewer may not read
WITHHELD = ThreadItem(
    author_handle="",
    author_name="",
    when="",
    url="",
    segments=[Segment("A reply withheld: part of a safeguarding case.")],
    visibility="withheld",
)


@dataclass(frozen=True)
class ActionChoice:
    """An action the viewer may ask for, with a note where the platform falls back."""

    kind: str
    label: str
    note: str = ""


@dataclass
class CasePage:
    """Everything the case page shows."""

    case_id: int
    title: str
    school: str
    account: str
    platform: str
    category: str
    severity: str
    state: str
    due: str
    overdue: bool
    assignee: str
    police_step: str | None
    cannot_hide: bool
    safeguarding: bool
    shows_content: bool
    holders: list[str]
    thread: list[ThreadItem] = field(default_factory=list)
    scores: list[tuple[str, str]] = field(default_factory=list)
    rules: list[tuple[str, str, str]] = field(default_factory=list)  # rule, matched, reason
    evidence: list[tuple[int, str, str, str]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    actions: list[ActionChoice] = field(default_factory=list)
    reply_templates: list[tuple[str, str]] = field(default_factory=list)
    assignable: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


ACTION_LABELS: dict[ActionKind, str] = {
    ActionKind.HIDE: "Hide the reply",
    ActionKind.UNHIDE: "Unhide the reply",
    ActionKind.REMOVE: "Remove it (moderator removal)",
    ActionKind.BLOCK: "Block the author",
    ActionKind.MUTE: "Mute the author",
    ActionKind.REPORT: "Report to the platform",
    ActionKind.REPLY: "Reply from a template",
    ActionKind.ACKNOWLEDGE: "Acknowledge",
    ActionKind.ASSIGN: "Assign",
    ActionKind.ESCALATE: "Escalate to senior leaders",
    ActionKind.DISMISS: "Dismiss: not a concern",
    ActionKind.MARK_RESPONDED: "Mark responded",
    ActionKind.CLOSE: "Close",
    ActionKind.POLICE_REPORTED: "Police step: reported to the police",
    ActionKind.POLICE_NOT_NEEDED: "Police step: considered, no report needed",
}


def platform_capabilities(platform: str) -> frozenset[str] | None:
    """What the platform's connector can do, or None when it is not known here."""
    try:
        from connectors.registry import connector_class

        return frozenset(c.value for c in connector_class(Platform(platform)).CAPABILITIES)
    except (ValueError, KeyError, ImportError):
        return None


def _platform_note(kind: ActionKind, platform: str, capabilities: frozenset[str] | None) -> str:
    """Why a platform action may not do exactly what it says here; '' when it does."""
    if capabilities is None or kind.value in capabilities:
        return ""
    if kind in (ActionKind.HIDE, ActionKind.REMOVE):
        return (
            f"{platform} cannot {kind.value} this: the worker reports it to the platform "
            "and blocks (or mutes) the author instead"
        )
    return f"{platform} cannot {kind.value}"


def case_page(
    session: Session,
    directory: Directory,
    person: Person,
    case: t.Case,
    *,
    now: datetime,
    reply_templates: Mapping[str, str],
) -> CasePage:
    """The case as ``person`` may see it; content only when the policy allows."""
    school = session.get(t.School, case.school_id) if case.school_id else None
    account = session.get(t.Account, case.account_id) if case.account_id else None
    assignee = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
    school_key = school.key if school else None
    timezone = school.timezone if school else DEFAULT_TIMEZONE
    facts = facts_of(case, school_key)
    shows = policy_gate.may_see_content(directory, person, facts)
    due, overdue = due_words(case.due_at, now)
    safeguarding = policy_gate.safeguarding(facts)
    page = CasePage(
        case_id=case.id,
        title=case.title if shows or not safeguarding else "Safeguarding concern",
        school=school.name if school else "Trust",
        account=account.key if account else "",
        platform=account.platform if account else "",
        category=case.category,
        severity=case.severity,
        state=case.state,
        due=due,
        overdue=overdue,
        assignee=assignee.name if assignee else "",
        police_step=case.police_step,
        cannot_hide=case.cannot_hide,
        safeguarding=safeguarding,
        shows_content=shows,
        holders=[p.name for p in policy_gate.content_holders(directory, school_key)],
    )
    events = session.scalars(
        select(t.AuditEvent).where(t.AuditEvent.case_id == case.id).order_by(t.AuditEvent.seq)
    ).all()
    wanted = {e.actor for e in events} | {
        str(e.details.get("to")) for e in events if e.action == "case.assigned"
    }
    names = staff_names(session, wanted)
    page.history = [history_line(e, names, timezone) for e in events]
    page.pending = [
        f"{r.kind.replace('_', ' ')} requested by {names.get(r.requested_by, r.requested_by)}: {r.status}"
        for r in session.scalars(
            select(t.ActionRequest)
            .where(t.ActionRequest.case_id == case.id)
            .order_by(t.ActionRequest.id)
        )
        if r.kind in {k.value for k in ActionKind}
        and ActionKind(r.kind)
        in {
            ActionKind.HIDE,
            ActionKind.UNHIDE,
            ActionKind.REMOVE,
            ActionKind.BLOCK,
            ActionKind.MUTE,
            ActionKind.REPORT,
            ActionKind.REPLY,
        }
    ]
    item = session.get(t.Item, case.item_id) if case.item_id else None
    if shows:
        _fill_content(session, page, case, item, timezone, directory=directory, person=person)
    capabilities = platform_capabilities(page.platform) if page.platform else None
    for kind, label in ACTION_LABELS.items():
        if item is None and kind in {
            ActionKind.HIDE,
            ActionKind.UNHIDE,
            ActionKind.REMOVE,
            ActionKind.BLOCK,
            ActionKind.MUTE,
            ActionKind.REPORT,
            ActionKind.REPLY,
        }:
            continue
        if kind is ActionKind.UNHIDE and (item is None or item.visibility != "hidden"):
            continue
        if kind is ActionKind.HIDE and item is not None and item.visibility == "hidden":
            continue
        if policy_gate.action_refusal(directory, person, facts, kind) is not None:
            continue
        note = _platform_note(kind, page.platform, capabilities) if kind in PLATFORM_KINDS else ""
        if note and kind not in (ActionKind.HIDE, ActionKind.REMOVE):
            continue  # the platform cannot do it at all, and nothing stands in for it
        page.actions.append(ActionChoice(kind.value, label, note))
    if any(a.kind == ActionKind.REPLY.value for a in page.actions):
        school_name = school.name if school else "the school"
        page.reply_templates = [
            (key, text.format(school=school_name)) for key, text in reply_templates.items()
        ]
    if any(a.kind == ActionKind.ASSIGN.value for a in page.actions):
        page.assignable = [
            (p.key, p.name)
            for p in directory.people
            if directory.in_post(p, school_key) and p.serves(school_key)
        ]
    return page


def _withheld(session: Session, directory: Directory, person: Person, item: t.Item) -> bool:
    """Whether a post in the thread is part of a safeguarding case ``person`` may not read."""
    for other, school_key in session.execute(
        select(t.Case, t.School.key)
        .outerjoin(t.School, t.School.id == t.Case.school_id)
        .where(t.Case.item_id == item.id)
    ):
        if not policy_gate.may_see_content(directory, person, facts_of(other, school_key)):
            return True
    return False


def _fill_content(
    session: Session,
    page: CasePage,
    case: t.Case,
    item: t.Item | None,
    timezone: str,
    *,
    directory: Directory,
    person: Person,
) -> None:
    assessment = (
        session.scalars(select(t.Assessment).where(t.Assessment.item_id == item.id)).one_or_none()
        if item
        else None
    )
    matches: list[Any] = list(assessment.matches) if assessment else []
    if item is not None:
        parent = (
            session.scalars(
                select(t.Item).where(
                    t.Item.platform == item.platform, t.Item.platform_id == item.parent_id
                )
            ).one_or_none()
            if item.parent_id
            else None
        )
        siblings = (
            session.scalars(
                select(t.Item)
                .where(
                    t.Item.platform == item.platform,
                    t.Item.parent_id == item.parent_id,
                    t.Item.id != item.id,
                )
                .order_by(t.Item.created_at)
                .limit(20)
            ).all()
            if item.parent_id
            else []
        )
        spans = [
            (int(m.get("start", 0)), int(m.get("end", 0))) for m in matches if isinstance(m, dict)
        ]
        if parent is not None:
            page.thread.append(_thread_item(parent, timezone, []))
        page.thread.append(_thread_item(item, timezone, spans, is_case_item=True))
        page.thread += [
            WITHHELD if _withheld(session, directory, person, s) else _thread_item(s, timezone, [])
            for s in siblings
        ]
        if parent is not None and _withheld(session, directory, person, parent):
            page.thread[0] = WITHHELD
    page.scores = sorted(
        (
            (label, f"{float(score):.2f}")
            for label, score in (assessment.scores if assessment else {}).items()
        ),
        key=lambda pair: pair[1],
        reverse=True,
    )
    page.rules = [
        (str(m.get("rule_id", "")), str(m.get("matched", "")), str(m.get("reason", "")))
        for m in matches
        if isinstance(m, dict) and m.get("rule_id")
    ]
    page.evidence = [
        (record.id, when(record.captured_at, timezone), record.captured_by, record.sha256)
        for record in session.scalars(
            select(t.Evidence).where(t.Evidence.case_id == case.id).order_by(t.Evidence.id)
        )
    ]


def _thread_item(
    item: t.Item, timezone: str, spans: list[tuple[int, int]], *, is_case_item: bool = False
) -> ThreadItem:
    return ThreadItem(
        author_handle=item.author_handle,
        author_name=item.author_name or "",
        when=when(item.created_at, timezone),
        url=item.url if item.url.startswith(("https://", "http://")) else "",
        segments=highlight(item.text, spans),
        is_case_item=is_case_item,
        visibility=item.visibility,
    )
