"""Digest figures against values computed independently from the seed records."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.digest.figures import DigestFigures, compute
from monitor.digest.weeks import week_bounds
from tests.digest import seed_digest as sd

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> tuple[sessionmaker[Session], sd.Seed]:
    seed = sd.build()
    sd.insert(sessions, sd.make_config(), seed)
    return sessions, seed


# ------------------------------------------------------------- the independent model


def london_monday(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=LONDON).astimezone(UTC)


@dataclass
class Window:
    start: datetime
    end: datetime


def trend_windows() -> list[Window]:
    # the eight Mondays up to 2026-11-16, as London midnights (five of them in BST)
    mondays = [date(2026, 9, 28) + timedelta(weeks=i) for i in range(9)]
    edges = [london_monday(d.year, d.month, d.day) for d in mondays]
    return [Window(edges[i], edges[i + 1]) for i in range(8)]


class Model:
    """The figures, derived by hand from the records."""

    def __init__(self, seed: sd.Seed, scope: str, window: Window, now: datetime) -> None:
        self.seed = seed
        self.scope = scope
        self.w = window
        self.now = now
        self.as_of = min(now, window.end)

    def account_in(self, account: str | None) -> bool:
        if self.scope == "trust":
            return True
        return account is not None and self.seed.schools[account] == self.scope

    def case_in(self, case: sd.SeedCase) -> bool:
        return self.scope == "trust" or (case.account is not None and self.account_in(case.account))

    def inside(self, moment: datetime | None, w: Window | None = None) -> bool:
        w = w or self.w
        return moment is not None and w.start <= moment < w.end

    def items(self, w: Window | None = None) -> list[sd.SeedItem]:
        return [
            i for i in self.seed.items if self.account_in(i.account) and self.inside(i.seen_at, w)
        ]

    def cases(self) -> list[sd.SeedCase]:
        return [c for c in self.seed.cases if self.case_in(c)]

    def flagged(self, w: Window | None = None) -> list[sd.SeedCase]:
        return [c for c in self.cases() if c.category in sd.CONTENT and self.inside(c.opened_at, w)]

    def outcome(self, c: sd.SeedCase) -> str:
        assert c.due_at is not None
        if c.responded_at is not None and c.responded_at <= c.due_at:
            return "met"
        if (
            c.responded_at is None
            and c.state not in sd.OPEN_STATES
            and c.closed_at is not None
            and c.closed_at <= c.due_at
            and c.breached_at is None
        ):
            return "not_needed"
        if c.due_at > self.now:
            return "pending"
        return "missed"

    def compliance(self, w: Window | None = None) -> float | None:
        outcomes = [self.outcome(c) for c in self.cases() if self.inside(c.due_at, w)]
        met, missed = outcomes.count("met"), outcomes.count("missed")
        return 100.0 * met / (met + missed) if met + missed else None

    def open_at_end(self, c: sd.SeedCase) -> bool:
        if c.opened_at >= self.as_of:
            return False
        if c.state in sd.OPEN_STATES:
            return True
        responded_later = c.responded_at is None or c.responded_at >= self.as_of
        closed_later = c.closed_at is None or c.closed_at >= self.as_of
        return responded_later and closed_later


def count_by(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def nearest_rank_95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


# ------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("week", "start", "end"),
    [
        ("2026-W47", "2026-11-16T00:00:00+00:00", "2026-11-23T00:00:00+00:00"),
        # summer time: London midnight is 23:00 UTC the day before
        ("2026-W27", "2026-06-28T23:00:00+00:00", "2026-07-05T23:00:00+00:00"),
        # clocks go forward on Sun 29 Mar 2026: a 167-hour week
        ("2026-W13", "2026-03-23T00:00:00+00:00", "2026-03-29T23:00:00+00:00"),
        # clocks go back on Sun 25 Oct 2026: a 169-hour week
        ("2026-W43", "2026-10-18T23:00:00+00:00", "2026-10-26T00:00:00+00:00"),
        # ISO week 1 of 2027 starts on Mon 4 Jan; 2026 has 53 weeks
        ("2027-W01", "2027-01-04T00:00:00+00:00", "2027-01-11T00:00:00+00:00"),
        ("2026-W53", "2026-12-28T00:00:00+00:00", "2027-01-04T00:00:00+00:00"),
    ],
)
def test_week_bounds(week: str, start: str, end: str) -> None:
    assert week_bounds(week) == (datetime.fromisoformat(start), datetime.fromisoformat(end))


@pytest.mark.parametrize("bad", ["2026-47", "2026-W54", "2025-W53", "2026-W00", "W47", ""])
def test_bad_weeks_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO week"):
        week_bounds(bad)


def test_the_seed_covers_the_interesting_cases(seeded: Any) -> None:
    _, seed = seeded
    model = Model(seed, "trust", Window(sd.START, sd.END), sd.NOW)
    due = [c for c in model.cases() if model.inside(c.due_at)]
    outcomes = {model.outcome(c) for c in due}
    assert outcomes == {"met", "missed", "not_needed"}  # a past week has nothing pending
    assert any(model.inside(i.hidden_at) for i in seed.items)
    assert any(c.category == "safeguarding" and model.inside(c.opened_at) for c in seed.cases)


@pytest.mark.parametrize("scope", ["trust", "oak", "river"])
def test_figures_match_an_independent_calculation(seeded: Any, scope: str) -> None:
    sessions, seed = seeded
    with sessions() as session:
        got = compute(session, week=sd.WEEK, scope=scope, now=sd.NOW)
    m = Model(seed, scope, Window(sd.START, sd.END), sd.NOW)

    assert (got.start, got.end, got.as_of) == (sd.START, sd.END, sd.END)
    # items and flagged, per account and platform
    items = m.items()
    flagged = m.flagged()
    accounts = sorted(a for a in sd.ACCOUNTS if m.account_in(a))
    assert [(a.key, a.items, a.flagged) for a in got.accounts] == [
        (
            a,
            sum(1 for i in items if i.account == a),
            sum(1 for c in flagged if c.account == a),
        )
        for a in accounts
    ]
    assert {a.key: a.school for a in got.accounts} == {a: seed.schools[a] for a in accounts}
    platforms = sorted({seed.platforms[a] for a in accounts})
    assert [(p.platform, p.accounts, p.items, p.flagged) for p in got.platforms] == [
        (
            p,
            sum(1 for a in accounts if seed.platforms[a] == p),
            sum(1 for i in items if seed.platforms[i.account] == p),
            sum(1 for c in flagged if c.account and seed.platforms[c.account] == p),
        )
        for p in platforms
    ]
    assert got.items == len(items) and got.flagged == len(flagged)
    assert {c.category: c.count for c in got.flagged_by_category} == count_by(
        [c.category for c in flagged]
    )

    # hidden or removed, and how long it had been visible
    hidden = [i for i in seed.items if m.account_in(i.account) and m.inside(i.hidden_at)]
    visible = [
        max(0.0, (i.hidden_at - i.created_at).total_seconds()) for i in hidden if i.hidden_at
    ]
    assert got.removals.hidden == len(hidden) > 0
    assert got.removals.median_visible_s == pytest.approx(statistics.median(visible))
    assert got.removals.max_visible_s == pytest.approx(max(visible))
    assert got.removals.still_visible == sum(
        1 for c in m.cases() if c.category == "removal_overdue" and m.inside(c.opened_at)
    )

    # response targets
    due = [c for c in m.cases() if m.inside(c.due_at)]
    outcomes = count_by([m.outcome(c) for c in due])
    r = got.responses
    assert (r.due, r.met, r.missed, r.pending, r.not_needed) == (
        len(due),
        outcomes.get("met", 0),
        outcomes.get("missed", 0),
        outcomes.get("pending", 0),
        outcomes.get("not_needed", 0),
    )
    assert r.compliance_pct == pytest.approx(m.compliance())
    times = []
    for c in due:
        if c.responded_at is not None:
            received = min(c.item.created_at, c.item.seen_at) if c.item else c.opened_at
            times.append(max(0.0, (c.responded_at - received).total_seconds()))
    assert r.answered == len(times) > 0
    # percentiles only over enough answers: a median from 5, a 95th percentile from 20
    if len(times) >= 5:
        assert r.median_s == pytest.approx(statistics.median(times))
    else:
        assert r.median_s is None
    if len(times) >= 20:
        assert r.p95_s == pytest.approx(nearest_rank_95(times))
    else:
        assert r.p95_s is None
    assert r.breaches == sum(1 for c in m.cases() if m.inside(c.breached_at))

    # open and overdue at the end of the week
    still_open = [c for c in m.cases() if m.open_at_end(c)]
    assert got.open_cases.open == len(still_open)
    assert got.open_cases.overdue == sum(
        1 for c in still_open if c.due_at is not None and c.due_at <= m.as_of
    )
    assert {c.category: c.count for c in got.open_cases.by_category} == count_by(
        [c.category for c in still_open]
    )

    # safeguarding: counts only
    assert got.safeguarding.referrals == sum(
        1 for c in m.cases() if c.category == "safeguarding" and m.inside(c.opened_at)
    )
    assert got.safeguarding.open == sum(1 for c in still_open if c.category == "safeguarding")

    # two administrators
    two = sorted((c for c in still_open if c.category == "two_admins"), key=lambda c: c.opened_at)
    assert [(p.account, p.admins, p.leaver) for p in got.two_admins] == [
        (
            c.account,
            len(c.details["admins"]) if "admins" in c.details else None,
            c.details.get("leaver"),
        )
        for c in two
    ]

    # monitoring gaps: overlapping the week, from the last success, clipped to the week
    gaps: dict[str, float] = {}
    opened_gaps = 0
    for c in m.cases():
        if c.category != "monitoring_gap" or c.opened_at >= m.as_of:
            continue
        if c.closed_at is not None and c.closed_at < m.w.start:
            continue
        opened_gaps += m.inside(c.opened_at)
        last = c.details["last_success"]
        begin = c.opened_at if last == "never" else datetime.fromisoformat(last)
        finish = min(c.closed_at, m.as_of) if c.closed_at else m.as_of
        seconds = max(0.0, (finish - max(begin, m.w.start)).total_seconds())
        assert c.account is not None
        gaps[c.account] = gaps.get(c.account, 0.0) + seconds
    assert got.gaps.opened == opened_gaps
    assert {g.account: g.seconds for g in got.gaps.by_account} == pytest.approx(gaps)
    assert got.gaps.total_s == pytest.approx(sum(gaps.values()))

    # leavers within 30 days of the week's end, handovers during the week
    config_staff = {s["id"]: s for s in sd.config_dict()["staff"]}

    def serves(key: str) -> bool:
        schools = config_staff[key].get("schools", [])
        return scope == "trust" or not schools or scope in schools

    horizon = date(2026, 11, 23) + timedelta(days=30)

    def name(key: str | None) -> str | None:  # the digest names staff, never their keys
        return config_staff[key]["name"] if key else None

    assert [(lv.key, lv.overdue, lv.successor) for lv in got.leavers] == [
        (s.key, s.leaving_on < date(2026, 11, 23), name(s.successor))
        for s in sorted(seed.staff, key=lambda s: (s.leaving_on or date.max, s.key))
        if s.leaving_on and s.leaving_on <= horizon and s.left_at is None and serves(s.key)
    ]
    assert [(h.key, h.successor, h.accounts) for h in got.handovers] == [
        (s.key, name(s.successor), len(s.handover_accounts))
        for s in seed.staff
        if m.inside(s.left_at) and serves(s.key)
    ]

    # classifier health
    assessed = [i for i in items if i.assessed]
    rules_only = [i for i in assessed if i.model is None]
    health = got.classifier
    assert (health.items, health.assessed, health.rules_only, health.unassessed) == (
        len(items),
        len(assessed),
        len(rules_only),
        len(items) - len(assessed),
    )
    assert health.rules_only_pct == pytest.approx(100.0 * len(rules_only) / len(assessed))
    down = [x for x in seed.cases if x.category == "classifier_down"]
    assert (health.down_opened, health.down_open) == (
        sum(1 for x in down if m.inside(x.opened_at)),
        sum(1 for x in down if m.open_at_end(x)),
    )

    # eight-week trend, bucketed by London weeks (five of them in summer time)
    windows = trend_windows()
    assert windows[-1].start == sd.START and windows[-1].end == sd.END
    assert [(w.week, w.items, w.flagged) for w in got.trend] == [
        (f"2026-W{40 + i}", len(m.items(win)), len(m.flagged(win))) for i, win in enumerate(windows)
    ]
    for week, win in zip(got.trend, windows, strict=True):
        expected = m.compliance(win)
        assert week.compliance_pct == (pytest.approx(expected) if expected is not None else None)
    assert got.trend[-1].compliance_pct == pytest.approx(r.compliance_pct)
    assert sum(w.items for w in got.trend) > 0


def test_the_current_week_so_far_has_pending_responses(seeded: Any) -> None:
    sessions, seed = seeded
    now = sd.END + timedelta(days=2, hours=3)  # Wednesday of 2026-W48
    with sessions() as session:
        got = compute(session, week="2026-W48", scope="trust", now=now)
    m = Model(seed, "trust", Window(sd.END, sd.END + timedelta(days=7)), now)
    assert got.as_of == now
    due = [c for c in m.cases() if m.inside(c.due_at)]
    outcomes = count_by([m.outcome(c) for c in due])
    assert outcomes.get("pending", 0) > 0
    assert (got.responses.pending, got.responses.met, got.responses.missed) == (
        outcomes.get("pending", 0),
        outcomes.get("met", 0),
        outcomes.get("missed", 0),
    )
    assert got.items == len(m.items())
    assert got.open_cases.open == sum(1 for c in m.cases() if m.open_at_end(c))


def test_figures_are_json_and_never_carry_safeguarding_content(seeded: Any) -> None:
    sessions, _ = seeded
    with sessions() as session:
        figures = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    text = json.dumps(figures.to_json(), sort_keys=True)
    assert json.loads(text)["week"] == sd.WEEK
    for secret in ("ZEBRA-SAFEGUARD", sd.SG_AUTHOR, sd.SG_AUTHOR_NAME, "troll", "<script>"):
        assert secret not in text


def test_an_empty_database_gives_zeros(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], [], [], {}, {}))
    with sessions() as session:
        got: DigestFigures = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW)
    assert got.items == got.flagged == 0
    assert got.responses.compliance_pct is None and got.responses.median_s is None
    assert got.removals.median_visible_s is None
    assert [w.items for w in got.trend] == [0] * 8
    assert {a.key for a in got.accounts} == {"oak-bsky", "oak-masto"}


def test_an_unknown_school_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="no school 'nope'"):
        compute(session, week=sd.WEEK, scope="nope", now=sd.NOW)


def test_the_digest_shows_the_undelivered_alerts_and_the_oldest_age(
    sessions: sessionmaker[Session],
) -> None:
    from monitor.constants import AlertChannel
    from monitor.digest.render import render
    from monitor.outbox import enqueue
    from monitor.storage import tables as t
    from monitor.storage.db import transaction

    sd.insert(sessions, sd.make_config(), sd.Seed([], [], [], {}, {}))
    _, end = week_bounds(sd.WEEK, "Europe/London")
    with transaction(sessions) as session:
        for key, queued, sent in (
            ("stuck", end - timedelta(hours=5), None),  # still waiting at the week's end
            ("late", end - timedelta(hours=1), end + timedelta(hours=1)),  # sent after it
            ("sent", end - timedelta(hours=9), end - timedelta(hours=8)),  # delivered in time
            ("next-week", end + timedelta(hours=2), None),  # not this week's
        ):
            enqueue(
                session,
                key=key,
                channel=AlertChannel.EMAIL,
                target="dsl@school.example",
                kind="notice",
                now=queued,
            )
            if sent is not None:
                alert = session.query(t.Alert).filter_by(idempotency_key=key).one()
                alert.status, alert.sent_at = "sent", sent
    with sessions() as session:
        got = compute(session, week=sd.WEEK, scope="oak", now=end + timedelta(days=1))
    assert (got.alerts.undelivered, got.alerts.oldest_age_s) == (2, 5 * 3600)
    digest = render(got, organisation="Trust")
    assert "Undelivered alerts: 2, the oldest waiting 5h 00m" in digest.text
    assert "Undelivered alerts: 2, the oldest waiting 5h 00m" in digest.html
