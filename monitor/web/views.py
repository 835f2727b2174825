"""What the queue and case pages show, read from the database (no permission decisions here:
each "may they?" goes to ``policy_gate``, which asks ``monitor/rules``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.constants import (
    DEFAULT_TIMEZONE,
    OPEN_CASE_STATES,
    ActionKind,
    CaseState,
    Category,
    Platform,
)
from monitor.directory import Directory, Person
from monitor.display import engagement_text, when
from monitor.notify.case_view import history_line, staff_names
from monitor.storage import tables as t
from monitor.storage.queries import web as q
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
    schools = [(key, name) for key, name in q.active_schools(session) if person.serves(key)]
    served = {key for key, _ in schools}
    accounts = [key for key, school in q.active_accounts(session) if school in served]
    staff = [(key, name) for key, name in q.active_staff(session)]
    return FilterChoices(
        schools=schools,
        accounts=accounts,
        platforms=[p.value for p in Platform],
        categories=[c.value for c in Category],
        states=[s.value for s in CaseState if s in OPEN_CASE_STATES],
        assignees=staff,
    )


@dataclass(frozen=True)
class _QueueCase:
    """The columns of one queued case the queue shows (never its details or payloads)."""

    id: int
    school: str | None
    account: str | None
    platform: str | None
    category: str
    severity: str
    state: str
    restricted: bool
    title: str
    assignee_key: str | None
    assignee_name: str | None
    police_step: str | None
    due_at: datetime | None


def _queue_cases(
    session: Session, person: Person, filters: QueueFilters, *, limit: int
) -> list[_QueueCase] | None:
    """The queue's cases in order (one SQL statement), or None when the filters contradict."""
    params: dict[str, Any] = {"limit": limit}
    if person.schools:
        params["served"] = sorted(person.schools)
    if filters.school:
        params["school"] = [filters.school]
    if filters.account:
        params["account"] = [filters.account]
    if filters.platform:
        params["platform"] = filters.platform
    if filters.category:
        params["category"] = filters.category
    if filters.assignee or filters.mine:
        keys = {k for k in (filters.assignee, person.key if filters.mine else "") if k}
        if len(keys) > 1:
            return None
        params["assignee"] = sorted(keys)
    states = tuple(
        sorted(s.value for s in OPEN_CASE_STATES if not filters.state or s.value == filters.state)
    )
    if not states:
        return None
    return [_QueueCase(*row) for row in q.queue_rows(session, states, params)]


def queue_lines(
    session: Session,
    directory: Directory,
    person: Person,
    filters: QueueFilters,
    *,
    now: datetime,
    limit: int = QUEUE_LIMIT,
) -> list[QueueLine]:
    """Open cases of the schools ``person`` serves: gravest first, then most overdue, then oldest.

    One SQL statement whatever the number of cases; the policy is asked once per distinct set
    of facts (category, state, school...), not once per row.
    """
    cases = _queue_cases(session, person, filters, limit=limit)
    if not cases:
        return []
    may_assign: dict[CaseFacts, bool] = {}
    lines = []
    for case in cases:
        facts = CaseFacts(
            category=Category(case.category),
            restricted=case.restricted,
            state=CaseState(case.state),
            school_key=case.school,
            police_step=case.police_step,
        )
        if facts not in may_assign:
            may_assign[facts] = (
                policy_gate.action_refusal(directory, person, facts, ActionKind.ASSIGN) is None
            )
        due, overdue = due_words(case.due_at, now)
        safeguarding = policy_gate.safeguarding(facts)
        lines.append(
            QueueLine(
                case_id=case.id,
                school=case.school or "trust",
                account=case.account or "",
                platform=case.platform or "",
                category=case.category,
                severity=case.severity,
                state=case.state,
                # the queue never shows a safeguarding case's content, to anyone: the case page
                # does, to those the policy allows, and records that they saw it
                title="Safeguarding concern" if safeguarding else case.title,
                due=due,
                overdue=overdue,
                assignee=case.assignee_name or "",
                safeguarding=safeguarding,
                may_claim=case.assignee_key != person.key and may_assign[facts],
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
    engagement: str | None = None  # R15: likes, reposts and replies at the last check
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
    """What the platform's connector can do (its manifest), or None when it is not known here.

    The manifest needs no platform library: the page answers on an install without it.
    """
    from connectors.registry import manifest

    try:
        return frozenset(c.value for c in manifest(Platform(platform)).capabilities)
    except (ValueError, KeyError):
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
    events = q.case_events(session, case.id)
    wanted = {e.actor for e in events} | {
        str(e.details.get("to")) for e in events if e.action == "case.assigned"
    }
    names = staff_names(session, wanted)
    page.history = [history_line(e, names, timezone) for e in events]
    page.pending = [
        f"{r.kind.replace('_', ' ')} requested by {names.get(r.requested_by, r.requested_by)}: {r.status}"
        for r in q.action_requests(session, case.id)
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


def _withheld(
    session: Session, directory: Directory, person: Person, items: Sequence[t.Item]
) -> set[int]:
    """The posts of a thread that are part of a safeguarding case ``person`` may not read.

    One statement for the whole thread (not one per sibling).
    """
    if not items:
        return set()
    hidden: set[int] = set()
    for item_id, category, restricted, state, police_step, school_key in q.cases_of_items(
        session, [item.id for item in items]
    ):
        facts = CaseFacts(
            category=Category(category),
            restricted=restricted,
            state=CaseState(state),
            school_key=school_key,
            police_step=police_step,
        )
        if item_id is None or item_id in hidden:
            continue
        if not policy_gate.may_see_content(directory, person, facts):
            hidden.add(item_id)
    return hidden


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
    assessment = q.assessment_of(session, item.id) if item else None
    matches: list[Any] = list(assessment.matches) if assessment else []
    if item is not None:
        parent = q.parent_of(session, item) if item.parent_id else None
        siblings = q.siblings_of(session, item, limit=20) if item.parent_id else []
        spans = [
            (int(m.get("start", 0)), int(m.get("end", 0))) for m in matches if isinstance(m, dict)
        ]
        if parent is not None:
            page.thread.append(_thread_item(parent, timezone, []))
        page.thread.append(_thread_item(item, timezone, spans, is_case_item=True))
        page.engagement = engagement_text(item.engagement)
        others = [*siblings, *([parent] if parent is not None else [])]
        withheld = _withheld(session, directory, person, others)
        page.thread += [
            WITHHELD if s.id in withheld else _thread_item(s, timezone, []) for s in siblings
        ]
        if parent is not None and parent.id in withheld:
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
        for record in q.evidence_of(session, case.id)
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
