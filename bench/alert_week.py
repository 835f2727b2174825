"""Nine weeks of a two-school trust: how many alerts a school receives, and how many needed someone.

The scenario is built with the tests' seeding helpers (the example trust, the fake platform,
the keyword assessor) and the real worker runs over it, the clock moved on an hour at a time.
Each week, at each school's accounts: an abusive reply that also asks something, hidden
promptly; an abusive reply hidden promptly; an abusive reply nobody acts on; a question
answered within two hours; a question nobody answers. Once: a safeguarding concern (the DSL
acknowledges it), a media enquiry (answered next day). Riverside's Reddit account has one
administrator and its platform cannot hide (report and block is the action). A moderator
leaves in week five.

Counted: the alert rows the outbox holds (each one an email or a Slack post or thread reply),
per school and week, by channel. An alert "needed a person" when it is about something still
to do when it was queued: a new case, a reminder or escalation of a case not yet handled
(content not hidden, reported or removed; question not answered), a standing problem (two
administrators, a leaver). News of an action already taken, and escalations of abuse that was
already hidden, did not.

Also counted: the weekly digest emails each school's leaders receive (``send_weekly`` run by
the same clock, as the service's catch-up job does), and how many opened with something that
needed a decision. They go outside the outbox, so they are reported on their own line.

Run: ``.venv/bin/python bench/alert_week.py`` (SQLite in a temporary folder; 2-7 minutes on 2 busy cores).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Item
from monitor.actions import POLICY, ActionRefused, Actor, request_action
from monitor.config import load_config
from monitor.constants import ActionKind, Category, Platform, Severity
from monitor.digest.send import send_weekly
from monitor.jobs.poll import ConnectorPool
from monitor.outbox import FROM_SLACK
from monitor.storage import tables as t
from monitor.storage.db import make_engine, session_factory, transaction
from monitor.storage.migrate import upgrade
from monitor.worker import Worker
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
WEEKS = 9
OAK = "oakfieldprimary.bsky.social"
RIVER = "RiversideAcademyUK"
HANDLES = {"oakfield": OAK, "riverside": RIVER}


@dataclass(frozen=True)
class Verdict:
    categories: frozenset[Category]
    severity: Severity = Severity.MEDIUM
    scores: Any = None
    model: str | None = "bench"

    def to_json(self) -> dict[str, Any]:
        return {"matches": [{"rule_id": f"bench.{c.value}"} for c in sorted(self.categories)]}


class KeywordAssessor:
    """As in the escalation tests, plus 'PRESS' for a media enquiry."""

    WORDS: ClassVar[dict[str, Category]] = {
        "ABUSE": Category.ABUSIVE,
        "HELPME": Category.SAFEGUARDING,
        "QUESTION": Category.NEEDS_RESPONSE,
        "THREAT": Category.THREAT,
        "PRESS": Category.MEDIA_ENQUIRY,
    }

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:  # noqa: ARG002 - the Assessor protocol
        return [
            Verdict(frozenset(c for w, c in self.WORDS.items() if w in text), scores={})
            for text in texts
        ]


@dataclass
class Event:
    at: datetime
    school: str
    text: str
    then: list[tuple[timedelta, str]]  # (after, what): hide, ack, reply, responded


def scenario() -> list[Event]:
    events: list[Event] = []
    for week in range(WEEKS):
        monday = START + timedelta(weeks=week)
        for school in HANDLES:
            day = monday + timedelta(hours=9)
            events += [
                Event(
                    day + timedelta(hours=1),
                    school,
                    "ABUSE, and a QUESTION too",
                    [(timedelta(minutes=30), "hide")],
                ),
                Event(
                    day + timedelta(days=1, hours=2),
                    school,
                    "you are ABUSE",
                    [(timedelta(minutes=30), "hide")],
                ),
                Event(day + timedelta(days=2, hours=5), school, "you are ABUSE", []),  # left alone
                Event(
                    day + timedelta(days=1),
                    school,
                    "QUESTION: trip money?",
                    [(timedelta(hours=2), "reply")],
                ),
                Event(day + timedelta(days=3), school, "QUESTION: is it non-uniform day?", []),
            ]
            if week == 1:
                events.append(
                    Event(
                        day + timedelta(days=2),
                        school,
                        "HELPME please",
                        [(timedelta(minutes=20), "ack")],
                    )
                )
            if week == 2:
                events.append(
                    Event(
                        day + timedelta(days=1, hours=4),
                        school,
                        "PRESS: a reporter asks",
                        [(timedelta(days=1), "responded")],
                    )
                )
    return sorted(events, key=lambda e: e.at)


def configured() -> Any:
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    staff = [
        s.model_copy(update={"leaving_date": (START + timedelta(weeks=4, days=3)).date()})
        if s.id == "cjones"
        else s.model_copy(update={"leaving_date": None})
        for s in config.staff
    ]
    accounts = [
        a.model_copy(update={"admins": ["ewright"], "enabled": True, "credentials": {}})
        if a.key == "riverside-reddit"
        else a
        for a in config.accounts
        if a.key != "oakfield-mastodon"
    ]
    return config.model_copy(update={"staff": staff, "accounts": accounts})


class DigestInbox:
    """Receives the digest emails (``monitor.digest.send.EmailSending``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []  # (address, subject, text)

    def send(self, to: Sequence[str], subject: str, text: str, *_args: Any, **_kwargs: Any) -> str:
        self.sent += [(address, subject, text) for address in to]
        return "bench"


def run() -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="alert_week_"))
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    oak, river = FakePlatform(), FakePlatform(can_hide=False)
    bound = {Platform.BLUESKY: FakeConnector.bind(oak), Platform.REDDIT: FakeConnector.bind(river)}
    platforms = {"oakfield": oak, "riverside": river}
    pool = ConnectorPool(environ={}, classes=lambda p: bound.get(p, bound[Platform.BLUESKY]))
    worker = Worker(sessions=sessions, config=configured(), assessor=KeywordAssessor(), pool=pool)
    worker.sync(START)
    inbox = DigestInbox()
    events = scenario()
    todo: list[tuple[datetime, str, str]] = []  # (when, platform id, what)
    added: dict[int, str] = {}
    now = START
    end = START + timedelta(weeks=WEEKS)
    while now < end:
        for event in [e for e in events if now - timedelta(hours=1) < e.at <= now]:
            item = platforms[event.school].add(HANDLES[event.school], event.text, event.at)
            added[id(item)] = item.platform_id
            todo += [(event.at + after, item.platform_id, what) for after, what in event.then]
            if any(what == "reply" for _, what in event.then):
                _school_reply(
                    platforms[event.school],
                    HANDLES[event.school],
                    item,
                    event.at + timedelta(hours=2),
                )
        worker.cycle(now)
        for when, platform_id, what in [x for x in todo if x[0] <= now]:
            todo.remove((when, platform_id, what))
            _act(worker, platform_id, what, now)
        worker.run_actions(now)
        send_weekly(sessions, worker.config, inbox, now=now)
        now += timedelta(hours=1)
    send_weekly(sessions, worker.config, inbox, now=end + timedelta(hours=9))  # the last week's
    worker.close()
    return {**_count(sessions), "digests": _digests(worker.config, inbox)}


def _digests(config: Any, inbox: DigestInbox) -> dict[str, Any]:
    """Digest emails per school (a reader's school; trust-wide leaders: "trust")."""
    school_of = {
        p.email.lower(): (p.schools[0] if p.schools else "trust") for p in config.staff if p.email
    }
    emails: Counter[str] = Counter()
    deciding: Counter[str] = Counter()
    for address, _, text in inbox.sent:
        school = school_of.get(address.lower(), "trust")
        emails[school] += 1
        deciding[school] += "Nothing needs your decision" not in text
    return {"emails": emails, "deciding": deciding}


def _school_reply(platform: FakePlatform, handle: str, question: Item, at: datetime) -> None:
    reply = platform.add(handle, "It is on Friday!", at)
    own = Item(**{**reply.__dict__, "is_own": True, "parent_id": question.platform_id})
    platform.items[handle][-1] = own


ACTORS = {
    ("oakfield", "hide"): "dmurphy",
    ("oakfield", "ack"): "bpatel",
    ("oakfield", "responded"): "aokafor",
    ("riverside", "hide"): "fali",
    ("riverside", "ack"): "ewright",
    ("riverside", "responded"): "ewright",
}
KIND = {
    "hide": ActionKind.HIDE,
    "ack": ActionKind.ACKNOWLEDGE,
    "responded": ActionKind.MARK_RESPONDED,
}


def _act(worker: Worker, platform_id: str, what: str, now: datetime) -> None:
    if what not in KIND:
        return
    with transaction(worker.sessions) as session:
        case = session.scalars(
            select(t.Case)
            .join(t.Item, t.Item.id == t.Case.item_id)
            .where(t.Item.platform_id == platform_id)
        ).first()
        if case is None:
            return
        directory = worker.directory(session, now)
        school = session.get(t.School, case.school_id)
        who = ACTORS[(school.key if school else "oakfield", what)]
        person = directory.person(who)
        actor = Actor.of(person, directory) if person else POLICY
        # as a Slack button click: the click itself is announced in the thread
        with contextlib.suppress(ActionRefused):  # e.g. a leaver's click
            request_action(
                session,
                case,
                KIND[what],
                actor=actor,
                now=now,
                directory=directory,
                reason=FROM_SLACK,
            )


UPDATE_KINDS = ("case_updated", "state", "reassessed", "still_public")
ESCALATING = (
    "reminder",
    "breach",
    "handling_reminder",
    "handling_missed",
    "removal_missed",
    "escalated",
)


def _needed(alert: t.Alert, case: t.Case | None, item: t.Item | None) -> bool:
    base = alert.kind.split(":")[0]
    if case is None:
        return True  # notices: leavers, handovers
    if base in UPDATE_KINDS:
        return False
    if base in ESCALATING:
        content_gone = (
            item is not None and item.hidden_at is not None and item.hidden_at <= alert.created_at
        )
        handled = getattr(case, "handled_at", None)
        answered = case.responded_at is not None and case.responded_at <= alert.created_at
        return not (
            content_gone or answered or (handled is not None and handled <= alert.created_at)
        )
    return True


def _count(sessions: Any) -> dict[str, Any]:
    """Emails: one per alert row. Slack: alerts for one case and one recipient queued in the
    same pass go out as one post or thread reply; a button click's own state change, and a
    quiet one (``alerting.state_change_is_quiet``), only edit the message (nothing new
    arrives: ``case_view.thread_note`` gives no reply for them)."""
    per: Counter[tuple[str, int, str]] = Counter()
    needed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    groups: dict[tuple[Any, ...], list[bool]] = {}
    with sessions() as session:
        schools = {s.id: s.key for s in session.scalars(select(t.School))}
        for alert in session.scalars(select(t.Alert).order_by(t.Alert.id)):
            if alert.payload.get("announced") or alert.payload.get("quiet"):
                continue  # an in-place edit of the message: nothing new arrives
            case = session.get(t.Case, alert.case_id) if alert.case_id else None
            item = session.get(t.Item, case.item_id) if case and case.item_id else None
            school = schools.get(case.school_id, "trust") if case and case.school_id else "trust"
            week = (alert.created_at - START).days // 7
            kinds[(alert.channel, alert.kind.split(":")[0])] += 1
            key: tuple[Any, ...] = (alert.id,)
            if alert.channel == "slack" and alert.case_id is not None:
                key = (
                    school,
                    week,
                    alert.target,
                    alert.case_id,
                    alert.created_at,
                    alert.kind == "case_opened",
                )
            groups.setdefault((school, week, alert.channel, *key), []).append(
                _needed(alert, case, item)
            )
    for (school, week, channel, *_), flags in groups.items():
        per[(school, week, channel)] += 1
        total[school] += 1
        needed[school] += any(flags)
    return {"per": per, "needed": needed, "total": total, "kinds": kinds}


def main() -> None:
    started = time.perf_counter()
    result = run()
    per, needed, total = result["per"], result["needed"], result["total"]
    print(
        f"alert_week: {WEEKS} weeks, two schools, hourly worker cycles ({time.perf_counter() - started:.0f} s)"
    )
    for school in sorted(total):
        emails = [per[(school, w, "email")] for w in range(WEEKS)]
        slack = [per[(school, w, "slack")] for w in range(WEEKS)]
        share = needed[school] / total[school] if total[school] else 1.0
        print(
            f"{school:10s} emails/week mean {sum(emails) / WEEKS:5.1f} (max {max(emails)}), "
            f"slack/week mean {sum(slack) / WEEKS:5.1f} (max {max(slack)}), "
            f"needed a person {needed[school]}/{total[school]} = {share:.0%}"
        )
    all_needed, all_total = sum(needed.values()), sum(total.values())
    print(
        f"all: {all_total} alerts, {sum(v for (s, w, c), v in per.items() if c == 'email')} emails, "
        f"needed a person {all_needed}/{all_total} = {all_needed / max(all_total, 1):.0%}"
    )
    digests = result["digests"]
    print(
        "digests: "
        + ", ".join(
            f"{school} {n} in {WEEKS} weeks ({digests['deciding'][school]} with a decision)"
            for school, n in sorted(digests["emails"].items())
        )
    )
    print("by kind: " + ", ".join(f"{c}/{k} {n}" for (c, k), n in sorted(result["kinds"].items())))


if __name__ == "__main__":
    main()
