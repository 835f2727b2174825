"""Sending: the schedule, recipients, real SMTP delivery, once-only, crashes and catch-up."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config_models import Config
from monitor.digest.charts import trend_charts
from monitor.digest.figures import compute
from monitor.digest.send import (
    RETRY_AFTER,
    STUCK_AFTER,
    DigestRun,
    due_week,
    recipients_for,
    scopes_for,
    send_weekly,
)
from monitor.directory import load_directory
from monitor.notify.email import EmailSender
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.conftest import EXAMPLE_CONFIG
from tests.digest import seed_digest as sd
from tests.digest.conftest import Mailbox

CEO, OAK_HEAD, RIVER_SLT = "ceo@trust.example", "head@oak.example", "slt@river.example"
# each head their own school's digest, trust leaders the trust's: nobody gets two
EVERYONE = {
    "trust": [CEO],
    "school:oak": [OAK_HEAD],
    "school:river": [RIVER_SLT],
}
MONDAY_0930 = sd.NOW
# loopback only: AUTH without TLS is what this local server is for
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("now", "weekday", "at", "due"),
    [
        # Monday 07:30 (GMT in November): before it the week before last is the one due
        ("2026-11-23T07:29:59+00:00", "monday", "07:30", "2026-W46"),
        ("2026-11-23T07:30:00+00:00", "monday", "07:30", "2026-W47"),
        ("2026-11-29T23:59:59+00:00", "monday", "07:30", "2026-W47"),
        # summer time: Monday 07:30 BST is 06:30 UTC
        ("2026-07-06T06:29:00+00:00", "monday", "07:30", "2026-W26"),
        ("2026-07-06T06:30:00+00:00", "monday", "07:30", "2026-W27"),
        # the Monday after the clocks go forward (Sun 29 Mar 2026)
        ("2026-03-30T06:29:00+00:00", "monday", "07:30", "2026-W12"),
        ("2026-03-30T06:30:00+00:00", "monday", "07:30", "2026-W13"),
        # the Monday after the clocks go back (Sun 25 Oct 2026)
        ("2026-10-26T07:29:00+00:00", "monday", "07:30", "2026-W42"),
        ("2026-10-26T07:30:00+00:00", "monday", "07:30", "2026-W43"),
        # a Sunday 01:30 schedule: on 29 Mar 2026 01:30 does not exist, it runs at 02:30 BST
        ("2026-03-29T01:29:00+00:00", "sunday", "01:30", "2026-W11"),
        ("2026-03-29T01:30:00+00:00", "sunday", "01:30", "2026-W12"),
        # on 25 Oct 2026 01:30 happens twice: the first one (BST, 00:30 UTC) counts
        ("2026-10-25T00:29:00+00:00", "sunday", "01:30", "2026-W41"),
        ("2026-10-25T00:30:00+00:00", "sunday", "01:30", "2026-W42"),
        ("2026-10-25T01:30:00+00:00", "sunday", "01:30", "2026-W42"),
        # Friday afternoon: last week's digest
        ("2026-11-20T15:59:00+00:00", "friday", "16:00", "2026-W45"),
        ("2026-11-20T16:00:00+00:00", "friday", "16:00", "2026-W46"),
        # across the year end (2026 has 53 ISO weeks)
        ("2027-01-04T07:30:00+00:00", "monday", "07:30", "2026-W53"),
        ("2027-01-04T07:29:00+00:00", "monday", "07:30", "2026-W52"),
    ],
)
def test_due_week(now: str, weekday: str, at: str, due: str) -> None:
    assert due_week(utc(now), weekday, time.fromisoformat(at), "Europe/London") == due


def test_due_week_can_give_up_on_stale_digests() -> None:
    late = utc("2026-11-29T10:00:00+00:00")  # Sunday: six days after W47's send time
    assert due_week(late, "monday", time(7, 30), "Europe/London") == "2026-W47"
    limit = timedelta(days=3)
    assert due_week(late, "monday", time(7, 30), "Europe/London", max_late=limit) is None


# ------------------------------------------------------------- recipients


def test_recipients(sessions: sessionmaker[Session]) -> None:
    config = sd.make_config()
    sd.insert(sessions, config, sd.build())
    scopes = scopes_for(config)
    assert scopes == ["trust", "school:oak", "school:river"]
    with sessions() as session:
        directory = load_directory(session, config.routing, now=sd.NOW)
    # no-email and inactive SLT are skipped; heads get their own school's, trust SLT the trust's
    for scope in scopes:
        assert recipients_for(directory, config.digest, scope, scopes) == EVERYONE[scope]
    named = sd.make_config(recipients=["oakhead", "retired", "comms1"]).digest
    assert recipients_for(directory, named, "trust", scopes) == []
    assert recipients_for(directory, named, "school:oak", scopes) == [
        "comms1@oak.example",
        OAK_HEAD,
    ]
    assert recipients_for(directory, named, "school:river", scopes) == []
    # without school digests, everyone reads the trust's
    whole = sd.make_config(per_school=False)
    assert scopes_for(whole) == ["trust"]
    assert recipients_for(directory, whole.digest, "trust", ["trust"]) == sorted(
        [CEO, OAK_HEAD, RIVER_SLT]
    )


def test_a_one_school_organisation_gets_one_digest_not_two(
    sessions: sessionmaker[Session],
) -> None:
    data = sd.config_dict()
    data["schools"] = data["schools"][:1]
    data["accounts"] = [a for a in data["accounts"] if a["school"] == "oak"]
    for person in data["staff"]:
        person["schools"] = [s for s in person.get("schools", []) if s == "oak"]
    config = Config.model_validate(data)
    sd.insert(sessions, config, sd.Seed([], [], [], {}, {}))
    sent: list[tuple[str, str]] = []

    class Recorder:
        def send(self, to: Sequence[str], subject: str, *args: Any, **kwargs: Any) -> str:
            sent.extend((address, subject) for address in to)
            return "id"

    runs = send_weekly(sessions, config, Recorder(), now=MONDAY_0930, week=sd.WEEK)
    assert [run.scope for run in runs] == ["trust"]
    # every leader once: the head and the trust-wide SLT read the same, single digest
    assert sorted(address for address, _ in sent) == [CEO, OAK_HEAD, RIVER_SLT]
    assert len({subject for _, subject in sent}) == 1


# ------------------------------------------------------------- delivery


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    sd.insert(sessions, sd.make_config(), sd.build())
    return sessions


def runs_by_scope(runs: list[DigestRun]) -> dict[str, str]:
    return {run.scope: run.outcome for run in runs}


def stored_runs(sessions: sessionmaker[Session]) -> dict[tuple[str, str], t.DigestRun]:
    with sessions() as session:
        return {(r.week, r.scope): r for r in session.scalars(select(t.DigestRun))}


@pytest.mark.peer
def test_the_digest_arrives_intact_once_per_recipient_and_scope(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender
) -> None:
    config = sd.make_config()
    runs = send_weekly(seeded, config, email_sender, now=MONDAY_0930)
    assert runs_by_scope(runs) == dict.fromkeys(EVERYONE, "sent")
    assert {r.scope: list(r.sent_to) for r in runs} == EVERYONE
    received = mailbox.wait_for(3)
    assert len(received) == 3
    assert mailbox.per_recipient() == {CEO: 1, OAK_HEAD: 1, RIVER_SLT: 1}
    assert all(m.authenticated and len(m.rcpt_tos) == 1 for m in received)
    # one stable Message-ID per week, scope and recipient: a repeat would be the same message
    expected_ids = {
        email_sender.message_id(f"digest:{sd.WEEK}:{scope}:{address}")
        for scope, addresses in EVERYONE.items()
        for address in addresses
    }
    assert {str(m.message()["Message-ID"]) for m in received} == expected_ids
    assert len(expected_ids) == 3

    with seeded() as session:
        figures = compute(session, week=sd.WEEK, scope="trust", now=MONDAY_0930)
    charts = trend_charts(figures.trend)
    trust_mails = [m.message() for m in received if "Northfield" in str(m.message()["Subject"])]
    assert len(trust_mails) == 1
    message = trust_mails[0]
    assert message["To"] in EVERYONE["trust"]  # one recipient per message: nobody sees the list
    assert message["Subject"] == (
        "Weekly social media digest: Northfield & <Trust>, 16 to 22 Nov 2026"
    )
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert f"Items seen: {figures.items}" in text_part.get_content()
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    html = html_part.get_content()
    got_images = {str(i["Content-ID"]).strip("<>"): i.get_content() for i in images}
    assert got_images == charts  # byte for byte
    for cid in charts:
        assert f'src="cid:{cid}"' in html
    assert all(i.get_content_disposition() == "inline" for i in images)
    for m in received:
        for secret in (sd.SG_TEXT, sd.SG_AUTHOR, sd.SG_AUTHOR_NAME, "ZEBRA-SAFEGUARD"):
            assert secret.encode() not in m.content
    oak = next(m.message() for m in received if "Oak" in str(m.message()["Subject"]))
    assert "\u202e" not in str(oak["Subject"])

    rows = stored_runs(seeded)
    assert set(rows) == {(sd.WEEK, scope) for scope in EVERYONE}
    for (_, scope), row in rows.items():
        assert row.status == "sent" and row.sent_at == MONDAY_0930
        assert row.recipients == EVERYONE[scope]
        assert row.figures["week"] == sd.WEEK
        assert row.figures["delivery"]["sent"] == EVERYONE[scope]
    assert rows[(sd.WEEK, "trust")].figures["items"] == figures.items

    # the same run again, later that day and the next: nothing more is sent
    for later in (MONDAY_0930 + timedelta(minutes=5), MONDAY_0930 + timedelta(days=1)):
        again = send_weekly(seeded, config, email_sender, now=later)
        assert runs_by_scope(again) == dict.fromkeys(EVERYONE, "already_sent")
    assert len(mailbox.received) == 3


class Crash(BaseException):
    """The process dying (not an Exception: nothing may catch it)."""


class CrashingSender:
    """The real sender, but the process 'dies' around the n-th message."""

    def __init__(self, real: EmailSender, n: int, *, after_smtp: bool) -> None:
        self.real = real
        self.n = n
        self.after_smtp = after_smtp
        self.calls = 0

    def send(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        inline_images: Mapping[str, bytes] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        self.calls += 1
        if self.calls == self.n and not self.after_smtp:
            raise Crash
        result = self.real.send(
            to, subject, text, html, inline_images, idempotency_key=idempotency_key
        )
        if self.calls == self.n:
            raise Crash
        return result


@pytest.mark.peer
@pytest.mark.parametrize("after_smtp", [True, False])
def test_a_crash_mid_send_never_sends_twice(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender, after_smtp: bool
) -> None:
    config = sd.make_config(per_school=False)  # one digest, read by all three leaders
    crashing = CrashingSender(email_sender, 2, after_smtp=after_smtp)
    with pytest.raises(Crash):
        send_weekly(seeded, config, crashing, now=MONDAY_0930, scopes=["trust"])
    row = stored_runs(seeded)[(sd.WEEK, "trust")]
    assert row.status == "sending"
    assert row.figures["delivery"]["sent"] == [CEO]
    assert row.figures["delivery"]["attempting"] == OAK_HEAD

    # a run while the lease is still fresh leaves it alone
    soon = send_weekly(
        seeded, config, email_sender, now=MONDAY_0930 + timedelta(minutes=5), scopes=["trust"]
    )
    assert runs_by_scope(soon) == {"trust": "in_progress"}

    # after the lease runs out, the rest are sent; the interrupted one is not repeated
    later = MONDAY_0930 + STUCK_AFTER + timedelta(seconds=1)
    [run] = send_weekly(seeded, config, email_sender, now=later, scopes=["trust"])
    assert run.outcome == "sent"
    assert run.sent_to == (RIVER_SLT,)
    assert run.uncertain == (OAK_HEAD,)
    expected = {CEO: 1, RIVER_SLT: 1} | ({OAK_HEAD: 1} if after_smtp else {})
    mailbox.wait_for(len(expected))
    assert mailbox.per_recipient() == expected
    row = stored_runs(seeded)[(sd.WEEK, "trust")]
    assert row.status == "sent" and row.sent_at == later
    assert row.figures["delivery"]["uncertain"] == [OAK_HEAD]
    assert row.figures["delivery"]["attempts"] == 2
    # and it stays sent
    final = send_weekly(seeded, config, email_sender, now=later + timedelta(hours=1))
    assert runs_by_scope(final)["trust"] == "already_sent"
    assert mailbox.per_recipient()[CEO] == 1


@pytest.mark.peer
def test_catch_up_after_downtime_sends_the_latest_week_once(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender
) -> None:
    config = sd.make_config()
    with transaction(seeded) as session:
        for scope in EVERYONE:
            session.add(
                t.DigestRun(
                    week="2026-W46",
                    scope=scope,
                    status="sent",
                    started_at=utc("2026-11-16T07:30:00+00:00"),
                    sent_at=utc("2026-11-16T07:30:01+00:00"),
                    recipients=EVERYONE[scope],
                    figures={},
                )
            )
    # early on Monday: last week's digest went out a week ago; nothing is due
    early = send_weekly(seeded, config, email_sender, now=utc("2026-11-23T06:00:00+00:00"))
    assert runs_by_scope(early) == dict.fromkeys(EVERYONE, "already_sent")
    # the worker was down at 07:30; it comes back at 11:00 and sends W47, late, once
    late = send_weekly(seeded, config, email_sender, now=utc("2026-11-23T11:00:00+00:00"))
    assert {r.week for r in late} == {sd.WEEK}
    assert runs_by_scope(late) == dict.fromkeys(EVERYONE, "sent")
    mailbox.wait_for(3)
    tuesday = send_weekly(seeded, config, email_sender, now=utc("2026-11-24T09:00:00+00:00"))
    assert runs_by_scope(tuesday) == dict.fromkeys(EVERYONE, "already_sent")
    # down for two Mondays: only the most recent week is sent, not the backlog
    back = send_weekly(seeded, config, email_sender, now=utc("2026-12-08T10:00:00+00:00"))
    assert {r.week for r in back} == {"2026-W49"}
    assert runs_by_scope(back) == dict.fromkeys(EVERYONE, "sent")
    mailbox.wait_for(6)
    assert len(mailbox.received) == 6
    weeks = {week for week, _ in stored_runs(seeded)}
    assert weeks == {"2026-W46", sd.WEEK, "2026-W49"}  # W48 was skipped, not sent late


@pytest.mark.peer
def test_temporary_failures_are_retried_permanent_ones_are_not(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender
) -> None:
    config = sd.make_config(per_school=False)  # one digest, read by all three leaders
    mailbox.busy.add(OAK_HEAD)
    mailbox.unknown.add(RIVER_SLT)
    [first] = send_weekly(seeded, config, email_sender, now=MONDAY_0930, scopes=["trust"])
    assert first.outcome == "failed"
    assert first.sent_to == (CEO,)
    assert set(first.failed) == {OAK_HEAD, RIVER_SLT}
    assert stored_runs(seeded)[(sd.WEEK, "trust")].status == "failed"
    # too soon to retry
    [soon] = send_weekly(
        seeded, config, email_sender, now=MONDAY_0930 + timedelta(minutes=1), scopes=["trust"]
    )
    assert soon.outcome == "waiting"
    mailbox.busy.clear()
    retry_at = MONDAY_0930 + RETRY_AFTER
    [retry] = send_weekly(seeded, config, email_sender, now=retry_at, scopes=["trust"])
    assert retry.outcome == "sent" and retry.sent_to == (OAK_HEAD,)
    assert mailbox.per_recipient() == {CEO: 1, OAK_HEAD: 1}
    row = stored_runs(seeded)[(sd.WEEK, "trust")]
    assert row.status == "sent"
    assert row.figures["delivery"]["failed"][RIVER_SLT]["permanent"] is True
    [done] = send_weekly(seeded, config, email_sender, now=retry_at + RETRY_AFTER, scopes=["trust"])
    assert done.outcome == "already_sent"
    assert len(mailbox.received) == 2


@pytest.mark.peer
def test_two_workers_at_once_send_once(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender
) -> None:
    config = sd.make_config()
    barrier = threading.Barrier(2)
    results: list[list[DigestRun]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(send_weekly(seeded, config, email_sender, now=MONDAY_0930))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(results) == 2
    mailbox.wait_for(3)
    assert mailbox.per_recipient() == {CEO: 1, OAK_HEAD: 1, RIVER_SLT: 1}
    outcomes = sorted(run.outcome for runs in results for run in runs)
    assert outcomes.count("sent") == 3
    assert set(outcomes) - {"sent"} <= {"in_progress", "already_sent"}


@pytest.mark.peer
def test_named_recipients_and_a_scope_with_nobody(
    seeded: sessionmaker[Session], mailbox: Mailbox, email_sender: EmailSender
) -> None:
    config = sd.make_config(recipients=["oakhead", "comms1"])
    runs = send_weekly(seeded, config, email_sender, now=MONDAY_0930)
    # both named serve Oak: they read Oak's digest, and nobody named needs the trust's
    assert runs_by_scope(runs) == {
        "trust": "no_readers",
        "school:oak": "sent",
        "school:river": "no_recipients",
    }
    mailbox.wait_for(2)
    assert mailbox.per_recipient() == {OAK_HEAD: 1, "comms1@oak.example": 1}
    # once somebody qualifies, a later run sends the missing digests
    fixed = sd.make_config(recipients=["oakhead", "comms1", "riverslt", "ceo"])
    later = send_weekly(seeded, fixed, email_sender, now=MONDAY_0930 + RETRY_AFTER)
    assert runs_by_scope(later) == {
        "trust": "sent",
        "school:oak": "already_sent",
        "school:river": "sent",
    }
    mailbox.wait_for(4)
    assert mailbox.per_recipient()[RIVER_SLT] == 1
    assert mailbox.per_recipient()[CEO] == 1


def test_a_bad_week_is_refused(seeded: sessionmaker[Session]) -> None:
    class Never:
        def send(self, *args: Any, **kwargs: Any) -> str:
            raise AssertionError("nothing may be sent")

    with pytest.raises(ValueError, match="ISO week"):
        send_weekly(seeded, sd.make_config(), Never(), now=MONDAY_0930, week="2026-47")


def test_each_head_gets_their_own_school_and_nobody_needs_the_trusts(
    sessions: sessionmaker[Session],
) -> None:
    """The example trust: two heads and no trust-wide leader, so two digests a week, not four."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for account in data["accounts"]:
        account["enabled"] = True  # both schools watched (the example ships one switched off)
    config = Config.model_validate(data)
    sd.insert(sessions, config, sd.Seed([], [], [], {}, {}))
    sent: list[tuple[str, str]] = []

    class Recorder:
        def send(self, to: Sequence[str], subject: str, *args: Any, **kwargs: Any) -> str:
            sent.extend((address, subject) for address in to)
            return "id"

    runs = send_weekly(sessions, config, Recorder(), now=MONDAY_0930, week=sd.WEEK)
    assert runs_by_scope(runs) == {
        "trust": "no_readers",
        "school:oakfield": "sent",
        "school:riverside": "sent",
    }
    names = {school.key: school.name for school in config.schools}
    heads = {p.id: p for p in config.staff if "principal" in p.roles}
    assert len(sent) == len(heads) == 2
    for address, subject in sent:
        head = next(p for p in heads.values() if p.email == address)
        assert names[head.schools[0]] in subject  # their own school, nobody else's
