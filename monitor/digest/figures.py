"""The weekly digest's figures: aggregate queries over one ISO week, for the trust or a school.

Definitions (the tests re-derive each of them from the seed data):

- *Items seen*: items whose ``seen_at`` is in the week, per account and platform.
- *Flagged*: content cases (abusive, safeguarding, ...) opened in the week; the policy opens
  exactly one case per flagged item, so this is the number of flagged items, by the case's
  (most serious) category.
- *Hidden or removed*: items whose ``hidden_at`` is in the week; time visible is
  ``hidden_at - created_at`` (never negative), as ``jobs/verify`` measures it (R8, R15).
- *Response targets* (R2), for cases whose ``due_at`` is in the week: *met* when
  ``responded_at <= due_at``; *not needed* when closed or dismissed before the due time
  without a response or a breach; *pending* while the due time is still ahead; otherwise
  *missed* (answered late, or not answered by the due time). Compliance is
  met / (met + missed). Response time runs from the item's arrival (the earlier of posted and
  seen; the case's opening when there is no item) to ``responded_at``; the median is the usual
  one, the 95th percentile is nearest-rank. *Breaches* are escalations for a missed target
  (``breached_at``) made during the week.
- *Open* and *overdue* cases are as at the end of the week (or ``now`` for the current week).
- *Safeguarding*: counts only; nothing here reads an item's text or author.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from monitor.clock import require_aware
from monitor.constants import (
    CONTENT_CATEGORIES,
    DEFAULT_TIMEZONE,
    OPEN_CASE_STATES,
    Category,
)
from monitor.digest.weeks import shift, week_bounds
from monitor.rules.digest import (
    MIN_SAMPLES_MEDIAN,
    MIN_SAMPLES_P95,
    AccountWatch,
    checked_all_week,
    enough_samples,
    unwatched,
)
from monitor.rules.routing import ROUTES
from monitor.rules.visibility import is_safeguarding
from monitor.storage import tables as t
from monitor.storage.queries import digest as q

TREND_WEEKS = 8
LEAVER_HORIZON_DAYS = 30
HANDOVER_ACTION = "staff.left"
TRUST = "trust"

_OPEN_STATES = sorted(s.value for s in OPEN_CASE_STATES)
_CONTENT = sorted(c.value for c in CONTENT_CATEGORIES)
# order in which categories are listed (most serious first), then operational ones
_CATEGORY_ORDER = [c.value for c in Category]
Outcome = Literal["met", "missed", "pending", "not_needed"]
# replies with a response target; media enquiries are listed on their own
_REPLY_CATEGORIES = sorted(
    c.value for c, route in ROUTES.items() if route.response_due and c is not Category.MEDIA_ENQUIRY
)
POLICE_PENDING = "pending"


# ------------------------------------------------------------- the figures


@dataclass(frozen=True)
class AccountFigures:
    """One account's week."""

    key: str
    school: str
    platform: str
    handle: str
    items: int
    flagged: int


@dataclass(frozen=True)
class PlatformFigures:
    """One platform's week, over the accounts in scope."""

    platform: str
    accounts: int
    items: int
    flagged: int


@dataclass(frozen=True)
class CategoryCount:
    """How many cases of one category."""

    category: str
    count: int


@dataclass(frozen=True)
class Removals:
    """R8: items hidden or removed in the week and how long they had been visible."""

    hidden: int
    median_visible_s: float | None
    max_visible_s: float | None
    still_visible: int  # removal_overdue cases opened: still visible at the removal target


@dataclass(frozen=True)
class Responses:
    """R2: cases due in the week, against their response target."""

    due: int
    met: int
    missed: int
    pending: int
    not_needed: int
    compliance_pct: float | None
    answered: int
    median_s: float | None
    p95_s: float | None
    breaches: int  # escalations for a missed target made during the week


@dataclass(frozen=True)
class OpenCases:
    """Cases open (and past their due time) at the end of the week."""

    open: int
    overdue: int
    by_category: tuple[CategoryCount, ...]


@dataclass(frozen=True)
class Safeguarding:
    """R6: counts only, never content or authors."""

    referrals: int
    open: int


@dataclass(frozen=True)
class AdminProblem:
    """R3: an account without two active administrators (or a blocked handover)."""

    account: str | None
    handle: str | None
    platform: str | None
    school: str | None
    since: datetime
    admins: int | None
    leaver: str | None


@dataclass(frozen=True)
class AccountGap:
    """R1: time one account went unchecked during the week."""

    account: str
    seconds: float
    still_open: bool


@dataclass(frozen=True)
class Gaps:
    """R1: monitoring gaps during the week."""

    opened: int
    total_s: float
    by_account: tuple[AccountGap, ...]


@dataclass(frozen=True)
class UnwatchedAccount:
    """An account that was not checked for the whole week, and why (``rules.digest``)."""

    account: str
    handle: str
    platform: str
    reason: str
    first_success: datetime | None


@dataclass(frozen=True)
class Coverage:
    """Whether every account in scope was checked throughout the week."""

    monitoring_since: datetime | None  # the scope's first successful poll
    checked_all_week: bool
    unwatched: tuple[UnwatchedAccount, ...]


@dataclass(frozen=True)
class Leaver:
    """R4: a member of staff leaving soon whose handover has not run."""

    key: str
    name: str
    leaving_on: date
    successor: str | None
    overdue: bool


@dataclass(frozen=True)
class Handover:
    """R4: a handover that ran during the week."""

    key: str
    name: str
    at: datetime
    successor: str | None
    accounts: int


@dataclass(frozen=True)
class ClassifierHealth:
    """How the week's items were assessed."""

    items: int
    assessed: int
    rules_only: int  # assessed with no model: rules only, to be rescored
    unassessed: int
    rules_only_pct: float | None
    down_opened: int
    down_open: int


@dataclass(frozen=True)
class AlertDelivery:
    """Alerts waiting to be delivered at the end of the week (every scope: the outbox is shared)."""

    undelivered: int
    oldest_age_s: int | None  # how long the oldest had waited, in seconds


@dataclass(frozen=True)
class PostFigures:
    """The school's own posts this week (R16): published, approvals, and what was blocked."""

    published: int  # publications that went out (one per account)
    approved: int
    changes_requested: int
    overridden: int  # warnings an approver overrode, with a reason
    blocked: int  # publications stopped by the checks just before publishing


@dataclass(frozen=True)
class DecisionCase:
    """One case that waits on a leader, as at the end of the week.

    ``withheld``: a safeguarding matter (``rules.visibility``): the digest says only that it
    exists and that the DSL has it; its account and holder are not named.
    """

    case_id: int
    category: str
    school: str | None
    account: str | None  # the account's handle
    platform: str | None
    since: datetime  # when it fell due (a reply) or opened (everything else)
    holder: str | None  # the assignee's name
    withheld: bool


@dataclass(frozen=True)
class Decisions:
    """ "Needs your decision": what a head must act on, first in the digest."""

    missed_replies: tuple[DecisionCase, ...]  # queries past their response target, unanswered
    media_waiting: tuple[DecisionCase, ...]  # media enquiries not yet answered
    two_admins: tuple[AdminProblem, ...]  # accounts below two administrators
    still_visible: tuple[DecisionCase, ...]  # content still visible past its removal target
    leavers_without_successor: tuple[Leaver, ...]
    police_pending: tuple[DecisionCase, ...]  # threats awaiting the police decision (R9)

    @property
    def count(self) -> int:
        """How many things wait on a decision."""
        return (
            len(self.missed_replies)
            + len(self.media_waiting)
            + len(self.two_admins)
            + len(self.still_visible)
            + len(self.leavers_without_successor)
            + len(self.police_pending)
        )


@dataclass(frozen=True)
class TrendWeek:
    """One week of the eight-week trend."""

    week: str
    items: int
    flagged: int
    compliance_pct: float | None


@dataclass(frozen=True)
class DigestFigures:
    """Everything the digest shows, for one week and one scope."""

    week: str
    scope: str  # "trust" or a school key
    school_name: str | None
    timezone: str
    start: datetime
    end: datetime
    as_of: datetime
    generated_at: datetime
    items: int
    flagged: int
    accounts: tuple[AccountFigures, ...]
    platforms: tuple[PlatformFigures, ...]
    flagged_by_category: tuple[CategoryCount, ...]
    removals: Removals
    responses: Responses
    open_cases: OpenCases
    safeguarding: Safeguarding
    two_admins: tuple[AdminProblem, ...]
    gaps: Gaps
    coverage: Coverage
    leavers: tuple[Leaver, ...]
    handovers: tuple[Handover, ...]
    classifier: ClassifierHealth
    trend: tuple[TrendWeek, ...]
    alerts: AlertDelivery
    posts: PostFigures
    decisions: Decisions

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (times as ISO 8601 UTC, dates as ISO dates)."""
        result = _plain(self)
        assert isinstance(result, dict)
        return result


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return require_aware(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


# ------------------------------------------------------------- helpers


def percent(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole`` (None when there is nothing to measure)."""
    return 100.0 * part / whole if whole else None


def nearest_rank(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _ordered(counts: dict[str, int]) -> tuple[CategoryCount, ...]:
    rank = {name: i for i, name in enumerate(_CATEGORY_ORDER)}
    return tuple(
        CategoryCount(name, counts[name])
        for name in sorted(counts, key=lambda n: (rank.get(n, len(rank)), n))
        if counts[name]
    )


class _Scope:
    """The trust (everything) or one school, and the accounts in it."""

    def __init__(self, session: Session, scope: str) -> None:
        self.key = scope
        self.school: t.School | None = None
        if scope != TRUST:
            self.school = q.school_by_key(session, scope)
            if self.school is None:
                raise ValueError(f"no school {scope!r} (use 'trust' or a school key)")
        self.accounts: dict[int, tuple[t.Account, str]] = {
            row.id: (row, school_key)
            for row, school_key in q.accounts_in_scope(session, self.school_id)
        }

    @property
    def school_id(self) -> int | None:
        """The school's id, for the queries (None: the trust)."""
        return self.school.id if self.school is not None else None

    def serves(self, staff_schools: Iterable[str]) -> bool:
        """Whether staff serving ``staff_schools`` (empty: trust-wide) belong in this scope."""
        schools = list(staff_schools)
        return self.school is None or not schools or self.school.key in schools


# ------------------------------------------------------------- compute


def compute(
    session: Session,
    *,
    week: str,
    scope: str,
    now: datetime,
    timezone: str = DEFAULT_TIMEZONE,
) -> DigestFigures:
    """The digest figures for ``week`` ("2026-W47") and ``scope`` ("trust" or a school key)."""
    now = require_aware(now)
    start, end = week_bounds(week, timezone)
    as_of = min(now, end)
    where = _Scope(session, scope)
    ids = sorted(where.accounts)

    per_account = _items_per_account(session, ids, start, end)
    opened = _cases_opened(session, where, start, end)
    flagged_per_account: dict[int, int] = {}
    flagged_by_category: dict[str, int] = {}
    for account_id, category, count in opened:
        if category in _CONTENT:
            flagged_by_category[category] = flagged_by_category.get(category, 0) + count
            if account_id is not None:
                flagged_per_account[account_id] = flagged_per_account.get(account_id, 0) + count
    opened_by_category: dict[str, int] = {}
    for _, category, count in opened:
        opened_by_category[category] = opened_by_category.get(category, 0) + count

    accounts = []
    for account_id in sorted(where.accounts, key=lambda i: where.accounts[i][0].key):
        account, school_key = where.accounts[account_id]
        items = per_account.get(account_id, (0, 0, 0))[0]
        flagged = flagged_per_account.get(account_id, 0)
        if account.archived_at is not None and not items and not flagged:
            continue  # archived and quiet: nothing to say
        accounts.append(
            AccountFigures(
                account.key, school_key, account.platform, account.handle, items, flagged
            )
        )
    platforms: dict[str, list[int]] = {}
    for row in accounts:
        totals = platforms.setdefault(row.platform, [0, 0, 0])
        totals[0] += 1
        totals[1] += row.items
        totals[2] += row.flagged

    items_total = sum(v[0] for v in per_account.values())
    assessed = sum(v[1] for v in per_account.values())
    rules_only = sum(v[2] for v in per_account.values())
    down_opened, down_open = _classifier_down(session, start, end, as_of)
    names = _staff_names(session)
    two_admins = _two_admins(session, where, as_of, names)
    leavers = _leavers(session, where, as_of, timezone, names)
    gaps = _gaps(session, where, start, as_of)

    return DigestFigures(
        week=week,
        scope=scope,
        school_name=where.school.name if where.school else None,
        timezone=timezone,
        start=start,
        end=end,
        as_of=as_of,
        generated_at=now,
        items=items_total,
        flagged=sum(flagged_by_category.values()),
        accounts=tuple(accounts),
        platforms=tuple(PlatformFigures(name, *platforms[name]) for name in sorted(platforms)),
        flagged_by_category=_ordered(flagged_by_category),
        removals=_removals(
            session, ids, start, end, opened_by_category.get(Category.REMOVAL_OVERDUE.value, 0)
        ),
        responses=_responses(session, where, start, end, now),
        open_cases=_open_cases(session, where, as_of),
        safeguarding=Safeguarding(
            referrals=opened_by_category.get(Category.SAFEGUARDING.value, 0),
            open=_count_open(session, where, Category.SAFEGUARDING, as_of),
        ),
        two_admins=two_admins,
        gaps=gaps,
        coverage=_coverage(session, where, start, gaps),
        leavers=leavers,
        handovers=_handovers(session, where, start, end, names),
        classifier=ClassifierHealth(
            items=items_total,
            assessed=assessed,
            rules_only=rules_only,
            unassessed=items_total - assessed,
            rules_only_pct=percent(rules_only, assessed),
            down_opened=down_opened,
            down_open=down_open,
        ),
        trend=_trend(session, where, ids, week, timezone, now=now),
        alerts=_undelivered(session, as_of),
        posts=_posts(session, ids, start, end),
        decisions=Decisions(
            missed_replies=_decision_cases(
                session, where, as_of, names, categories=_REPLY_CATEGORIES, overdue=True
            ),
            media_waiting=_decision_cases(
                session, where, as_of, names, categories=[Category.MEDIA_ENQUIRY.value]
            ),
            two_admins=two_admins,
            still_visible=_decision_cases(
                session, where, as_of, names, categories=[Category.REMOVAL_OVERDUE.value]
            ),
            leavers_without_successor=tuple(p for p in leavers if p.successor is None),
            police_pending=_decision_cases(session, where, as_of, names, police_pending=True),
        ),
    )


def _posts(session: Session, ids: Sequence[int], start: datetime, end: datetime) -> PostFigures:
    """Publications, approvals and blocks on the scope's accounts in the week."""
    published = q.publications_published(session, ids, start, end)
    blocked = q.publications_blocked(session, ids, start, end)
    approvals = q.approvals_decided(session, ids, start, end)
    return PostFigures(
        published=published,
        approved=sum(1 for a in approvals if a.decision == "approved"),
        changes_requested=sum(1 for a in approvals if a.decision != "approved"),
        overridden=sum(len(a.overrides) for a in approvals),
        blocked=blocked,
    )


def _items_per_account(
    session: Session, ids: list[int], start: datetime, end: datetime
) -> dict[int, tuple[int, int, int]]:
    """(items, assessed, rules-only) per account, from one GROUP BY over the week's items."""
    if not ids:
        return {}
    rows = q.items_per_account(session, ids, start, end)
    return {int(a): (int(n), int(assessed), int(rules or 0)) for a, n, assessed, rules in rows}


def _cases_opened(
    session: Session, where: _Scope, start: datetime, end: datetime
) -> list[tuple[int | None, str, int]]:
    """(account, category, count) of cases opened in the week."""
    return [(a, c, int(n)) for a, c, n in q.cases_opened(session, where.school_id, start, end)]


def _removals(
    session: Session, ids: list[int], start: datetime, end: datetime, still_visible: int
) -> Removals:
    if not ids:
        return Removals(0, None, None, still_visible)
    rows = q.hidden_items(session, ids, start, end)
    visible = [
        max(0.0, (hidden - created).total_seconds())
        for created, hidden in rows
        if hidden is not None
    ]
    return Removals(
        hidden=len(visible),
        median_visible_s=_median(visible),
        max_visible_s=max(visible) if visible else None,
        still_visible=still_visible,
    )


def classify_outcome(
    *,
    due_at: datetime,
    responded_at: datetime | None,
    closed_at: datetime | None,
    breached_at: datetime | None,
    state: str,
    now: datetime,
) -> Outcome:
    """The R2 outcome of one case (the same rule as the SQL in ``storage.queries.digest``)."""
    if responded_at is not None and responded_at <= due_at:
        return "met"
    if (
        responded_at is None
        and state not in _OPEN_STATES
        and closed_at is not None
        and closed_at <= due_at
        and breached_at is None
    ):
        return "not_needed"
    if due_at > now:
        return "pending"
    return "missed"


def _responses(
    session: Session, where: _Scope, start: datetime, end: datetime, now: datetime
) -> Responses:
    """R2 figures; the week's due cases are few enough to finish in Python (percentiles)."""
    tally: dict[str, int] = {"met": 0, "missed": 0, "pending": 0, "not_needed": 0}
    times: list[float] = []
    for due, responded, closed, breached, state, opened, posted, seen in q.cases_due(
        session, where.school_id, start, end
    ):
        tally[
            classify_outcome(
                due_at=due,
                responded_at=responded,
                closed_at=closed,
                breached_at=breached,
                state=state,
                now=now,
            )
        ] += 1
        if responded is not None:
            received = min(posted, seen) if posted is not None and seen is not None else opened
            times.append(max(0.0, (responded - received).total_seconds()))
    breaches = q.breaches(session, where.school_id, start, end)
    return Responses(
        due=sum(tally.values()),
        met=tally["met"],
        missed=tally["missed"],
        pending=tally["pending"],
        not_needed=tally["not_needed"],
        compliance_pct=percent(tally["met"], tally["met"] + tally["missed"]),
        answered=len(times),
        # a percentile of a handful of answers would mislead: none until there are enough
        median_s=_median(times) if enough_samples(len(times), MIN_SAMPLES_MEDIAN) else None,
        p95_s=nearest_rank(times, 95) if enough_samples(len(times), MIN_SAMPLES_P95) else None,
        breaches=breaches,
    )


def _open_cases(session: Session, where: _Scope, as_of: datetime) -> OpenCases:
    rows = q.open_by_category(session, where.school_id, as_of)
    return OpenCases(
        open=sum(int(n) for _, n, _ in rows),
        overdue=sum(int(o or 0) for _, _, o in rows),
        by_category=_ordered({c: int(n) for c, n, _ in rows}),
    )


def _count_open(session: Session, where: _Scope, category: Category, as_of: datetime) -> int:
    return q.count_open(session, where.school_id, category, as_of)


@dataclass(frozen=True)
class _Names:
    """Staff names by key and by id: the digest names people, never their keys."""

    by_key: dict[str, str]
    by_id: dict[int, str]

    def of(self, key: str | None) -> str | None:
        """The name of staff ``key`` (the key itself only for someone no longer on record)."""
        if key is None:
            return None
        return self.by_key.get(key, key)


def _staff_names(session: Session) -> _Names:
    rows = q.staff_names(session)
    return _Names({key: name for _, key, name in rows}, {id_: name for id_, _, name in rows})


def _decision_cases(
    session: Session,
    where: _Scope,
    as_of: datetime,
    names: _Names,
    *,
    categories: Sequence[str] = (),
    overdue: bool = False,
    police_pending: bool = False,
) -> tuple[DecisionCase, ...]:
    """Cases waiting on a leader at ``as_of``: open ones of ``categories`` (past due when
    ``overdue``), or threats whose police decision is still to be made."""
    rows = q.decision_cases(
        session,
        where.school_id,
        as_of,
        categories=categories,
        overdue=overdue,
        police_pending=POLICE_PENDING if police_pending else None,
    )
    result = []
    for row, handle, platform, school_key in rows:
        # R6: a safeguarding matter is only said to exist; nothing about it is named
        withheld = is_safeguarding(category=row.case_category, restricted=row.restricted)
        holder = names.by_id.get(row.assignee_id) if row.assignee_id is not None else None
        result.append(
            DecisionCase(
                case_id=row.id,
                category=row.category,
                school=school_key,
                account=None if withheld else handle,
                platform=None if withheld else platform,
                since=row.due_at if overdue and row.due_at is not None else row.opened_at,
                holder=None if withheld else holder,
                withheld=withheld,
            )
        )
    return tuple(result)


def _two_admins(
    session: Session, where: _Scope, as_of: datetime, names: _Names
) -> tuple[AdminProblem, ...]:
    problems = []
    for opened_at, details, key, handle, platform, school_key in q.two_admin_cases(
        session, where.school_id, as_of
    ):
        admins = details.get("admins")
        leaver = details.get("leaver")
        problems.append(
            AdminProblem(
                account=key,
                handle=handle,
                platform=platform,
                school=school_key,
                since=opened_at,
                admins=len(admins) if isinstance(admins, list) else None,
                leaver=names.of(leaver) if isinstance(leaver, str) else None,
            )
        )
    return tuple(problems)


def _gap_start(details: dict[str, Any], opened_at: datetime) -> datetime:
    text = details.get("last_success")
    if isinstance(text, str) and text != "never":
        try:
            return require_aware(datetime.fromisoformat(text))
        except ValueError:
            pass
    return opened_at  # never checked: count from when the gap was noticed


def _gaps(session: Session, where: _Scope, start: datetime, as_of: datetime) -> Gaps:
    """R1: gaps overlapping the week, clipped to it; a gap runs from the last success."""
    opened = 0
    per_account: dict[str, list[Any]] = {}
    for opened_at, closed_at, details, account_key in q.gap_cases(
        session, where.school_id, start, as_of
    ):
        if opened_at >= start:
            opened += 1
        begin = max(start, _gap_start(details, opened_at))
        finish = min(as_of, closed_at) if closed_at is not None else as_of
        seconds = max(0.0, (finish - begin).total_seconds())
        entry = per_account.setdefault(account_key or "?", [0.0, False])
        entry[0] += seconds
        entry[1] = entry[1] or closed_at is None or closed_at >= as_of
    by_account = tuple(
        AccountGap(key, per_account[key][0], per_account[key][1]) for key in sorted(per_account)
    )
    return Gaps(opened=opened, total_s=sum(g.seconds for g in by_account), by_account=by_account)


def monitoring_since(session: Session, scope: str) -> datetime | None:
    """The first successful poll of any account in ``scope`` ("trust" or a school key)."""
    where = _Scope(session, scope)
    if not where.accounts:
        return None
    return q.first_success(session, sorted(where.accounts))


def _coverage(session: Session, where: _Scope, start: datetime, gaps: Gaps) -> Coverage:
    """Each account in scope (not archived before the week) against ``rules.digest.unwatched``."""
    first = q.first_successes(session, sorted(where.accounts))
    by_key = {g.account: g for g in gaps.by_account}
    watches: list[tuple[t.Account, AccountWatch]] = []
    for account_id in sorted(where.accounts, key=lambda i: where.accounts[i][0].key):
        account = where.accounts[account_id][0]
        if account.archived_at is not None and account.archived_at <= start:
            continue
        gap = by_key.get(account.key)
        watches.append(
            (
                account,
                AccountWatch(
                    account=account.key,
                    enabled=account.enabled and account.archived_at is None,
                    first_success=first.get(account_id),
                    gap_seconds=gap.seconds if gap else 0.0,
                    gap_open=gap.still_open if gap else False,
                ),
            )
        )
    starts = [w.first_success for _, w in watches if w.first_success is not None]
    missing = []
    for account, watch in watches:
        reason = unwatched(watch, start)
        if reason is not None:
            missing.append(
                UnwatchedAccount(
                    account.key, account.handle, account.platform, reason, watch.first_success
                )
            )
    return Coverage(
        monitoring_since=min(starts) if starts else None,
        checked_all_week=checked_all_week([w for _, w in watches], start),
        unwatched=tuple(missing),
    )


def _leavers(
    session: Session, where: _Scope, as_of: datetime, timezone: str, names: _Names
) -> tuple[Leaver, ...]:
    today = as_of.astimezone(ZoneInfo(timezone)).date()
    horizon = today + timedelta(days=LEAVER_HORIZON_DAYS)
    rows = q.leaving_by(session, horizon)
    return tuple(
        Leaver(
            row.key, row.name, row.leaving_on, names.of(row.successor_key), row.leaving_on < today
        )
        for row in rows
        if row.leaving_on is not None and where.serves(row.schools)
    )


def _handovers(
    session: Session, where: _Scope, start: datetime, end: datetime, names: _Names
) -> tuple[Handover, ...]:
    staff = {f"staff:{row.key}": row for row in q.all_staff(session) if where.serves(row.schools)}
    if not staff:
        return ()
    events = q.audit_events(session, sorted(staff), HANDOVER_ACTION, start, end)
    result = []
    for event in events:
        person = staff[event.subject]
        successor = event.details.get("successor")
        moved = event.details.get("accounts")
        result.append(
            Handover(
                key=person.key,
                name=person.name,
                at=event.at,
                successor=names.of(successor) if isinstance(successor, str) else None,
                accounts=len(moved) if isinstance(moved, list) else 0,
            )
        )
    return tuple(result)


def _undelivered(session: Session, as_of: datetime) -> AlertDelivery:
    """Alerts queued by ``as_of`` and not delivered by then (cancelled ones excluded)."""
    count, oldest = q.undelivered_alerts(session, as_of)
    age = int((as_of - oldest).total_seconds()) if oldest is not None else None
    return AlertDelivery(count, age)


def _classifier_down(
    session: Session, start: datetime, end: datetime, as_of: datetime
) -> tuple[int, int]:
    """Classifier outages concern every school, so they are counted in every scope."""
    return q.classifier_down(session, start, end, as_of)


def _trend(
    session: Session,
    where: _Scope,
    ids: list[int],
    week: str,
    timezone: str,
    *,
    now: datetime,
) -> tuple[TrendWeek, ...]:
    """Items, flagged and compliance for the eight weeks ending with ``week``: three GROUP BYs."""
    weeks = [shift(week, i - TREND_WEEKS + 1) for i in range(TREND_WEEKS)]
    bounds = [week_bounds(w, timezone)[0] for w in weeks] + [week_bounds(week, timezone)[1]]
    items = [0] * TREND_WEEKS
    if ids:
        for bucket, count in q.trend_items(session, ids, bounds):
            items[bucket] = count
    flagged = [0] * TREND_WEEKS
    for bucket, count in q.trend_flagged(session, where.school_id, bounds):
        flagged[bucket] = count
    outcomes: list[dict[str, int]] = [{} for _ in range(TREND_WEEKS)]
    for bucket, outcome, count in q.trend_outcomes(session, where.school_id, bounds, now):
        outcomes[bucket][outcome] = count
    return tuple(
        TrendWeek(
            week=weeks[i],
            items=items[i],
            flagged=flagged[i],
            compliance_pct=percent(
                outcomes[i].get("met", 0), outcomes[i].get("met", 0) + outcomes[i].get("missed", 0)
            ),
        )
        for i in range(TREND_WEEKS)
    )
