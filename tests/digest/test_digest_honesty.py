"""What the digest may claim: no digest before monitoring began, "every account was checked"
only when true for the whole week, staff by name, percentiles only over enough answers."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config_models import Config
from monitor.digest.figures import compute
from monitor.digest.render import render
from monitor.digest.send import send_weekly
from monitor.storage import tables as t
from monitor.storage.queries.accounts import mark_failure, mark_success
from tests.digest import seed_digest as sd

S = sd.START
CHECKED = "Every account was checked throughout the week."


class Recorder:
    """A sender that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: Sequence[str], subject: str, *args: Any, **kwargs: Any) -> str:
        self.sent += [(address, subject) for address in to]
        return "id"


def all_enabled() -> Config:
    data = sd.config_dict()
    for account in data["accounts"]:
        account["enabled"] = True
    return Config.model_validate(data)


def test_no_digest_for_weeks_before_the_first_successful_poll(
    sessions: sessionmaker[Session],
) -> None:
    first_poll = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday of the week after W47
    sd.insert(sessions, sd.make_config(), sd.build(), monitored_since=first_poll)
    sender = Recorder()
    runs = send_weekly(sessions, sd.make_config(), sender, now=sd.NOW)
    assert {(r.week, r.outcome) for r in runs} == {(sd.WEEK, "not_monitored")}
    assert sender.sent == []
    with sessions() as session:  # nothing claimed: the week is not "sent", just never due
        assert session.scalar(select(func.count()).select_from(t.DigestRun)) == 0
    # the week monitoring began in gets its digest, saying it was not watched all week
    later = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    runs = send_weekly(sessions, sd.make_config(), sender, now=later)
    assert {(r.week, r.outcome) for r in runs} == {("2026-W48", "sent")}
    assert len(sender.sent) == 3
    with sessions() as session:
        figures = compute(session, week="2026-W48", scope="trust", now=later)
    assert figures.coverage.monitoring_since == first_poll
    assert not figures.coverage.checked_all_week
    text = render(figures, organisation="Trust").text
    assert CHECKED not in text
    assert "river.bsky.social (Bluesky): first checked during the week, from Wed 25 Nov" in text


def test_accounts_never_polled_get_no_digest(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.build(), monitored_since=None)
    sender = Recorder()
    runs = send_weekly(sessions, sd.make_config(), sender, now=sd.NOW)
    assert {r.outcome for r in runs} == {"not_monitored"}
    assert sender.sent == []


def test_every_account_was_checked_only_when_true_all_week(
    sessions: sessionmaker[Session],
) -> None:
    config = all_enabled()
    sd.insert(sessions, config, sd.Seed([], [], [], {}, {}))
    with sessions() as session:
        quiet = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    assert quiet.coverage.checked_all_week and quiet.coverage.unwatched == ()
    assert CHECKED in render(quiet, organisation="Trust").text

    # one account first polled on the Tuesday: not checked for the whole week
    with sessions.begin() as session:
        health = session.scalars(
            select(t.AccountHealth)
            .join(t.Account, t.Account.id == t.AccountHealth.account_id)
            .where(t.Account.key == "river-reddit")
        ).one()
        health.first_success_at = S + timedelta(days=1)
    with sessions() as session:
        trust = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
        oak = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW)
    assert not trust.coverage.checked_all_week
    assert [(u.account, u.reason) for u in trust.coverage.unwatched] == [
        ("river-reddit", "first checked during the week")
    ]
    assert CHECKED not in render(trust, organisation="Trust").text
    assert CHECKED not in render(trust, organisation="Trust").html
    assert oak.coverage.checked_all_week  # the other school's account is not Oak's concern


def test_a_switched_off_or_never_checked_account_is_not_every_account_checked(
    sessions: sessionmaker[Session],
) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], [], [], {}, {}))
    with sessions() as session:
        oak = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW)
    # no gap case was ever opened, yet oak-masto is switched off
    assert oak.gaps.by_account == ()
    assert not oak.coverage.checked_all_week
    text = render(oak, organisation="Trust").text
    assert CHECKED not in text
    assert "oak@mastodon.example (Mastodon): switched off: not monitored" in text


def test_staff_are_named_not_keyed(sessions: sessionmaker[Session]) -> None:
    seed = sd.Seed(
        [],
        [
            sd.SeedCase(
                "two_admins",
                "new",
                S,
                None,
                details={"leaver": "leaver-soon"},
                school_override="oak",
            )
        ],
        [
            sd.SeedStaffChange(
                "leaver-river", leaving_on=S.date() + timedelta(days=10), successor="comms3"
            ),
            sd.SeedStaffChange(
                "gone-oak",
                leaving_on=S.date(),
                left_at=S + timedelta(days=1),
                successor="comms1",
                handover_accounts=["oak-bsky"],
            ),
        ],
        {},
        {},
    )
    sd.insert(sessions, sd.make_config(), seed)
    with sessions() as session:
        figures = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    text = render(figures, organisation="Trust").text
    assert "A handover for Lee Soon is blocked" in text
    assert "Rio Leaver: Thu 26 Nov 2026, successor Eli Comms" in text
    assert "passed to Cam Comms" in text
    for key in ("leaver-soon", "comms3", "comms1"):
        assert key not in text


def _answered(count: int) -> list[sd.SeedCase]:
    return [
        sd.SeedCase(
            "needs_response",
            "responded",
            S + timedelta(hours=n),
            "oak-bsky",
            due_at=S + timedelta(days=1, hours=n),
            responded_at=S + timedelta(hours=n, minutes=10 * (n + 1)),
        )
        for n in range(count)
    ]


def test_percentiles_only_over_enough_answers(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], _answered(4), [], {}, {}))
    with sessions() as session:
        few = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW)
    assert few.responses.answered == 4
    assert few.responses.median_s is None and few.responses.p95_s is None
    text = render(few, organisation="Trust").text
    assert "Median response time: too few answers to measure" in text
    assert "95th percentile response time: too few answers to measure" in text


@pytest.mark.parametrize("answers", [5, 20])
def test_a_median_from_five_answers_a_95th_percentile_from_twenty(
    sessions: sessionmaker[Session], answers: int
) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], _answered(answers), [], {}, {}))
    with sessions() as session:
        got = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW).responses
    assert got.answered == answers
    minutes = [10 * (n + 1) for n in range(answers)]  # the response times
    assert got.median_s == statistics.median(minutes) * 60
    # nearest rank: the 19th of 20
    assert got.p95_s == (190 * 60 if answers == 20 else None)


def test_the_first_successful_poll_is_kept_by_later_polls(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], [], [], {}, {}), monitored_since=None)
    with sessions.begin() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == "oak-bsky")).one()
        assert session.get(t.AccountHealth, account.id) is None
        mark_failure(
            session, account.id, S, kind="network", message="down", retry_at=S, pause=False
        )
        assert session.get_one(t.AccountHealth, account.id).first_success_at is None
        mark_success(session, account.id, S + timedelta(hours=1), timedelta(minutes=5))
        mark_success(session, account.id, S + timedelta(hours=2), timedelta(minutes=5))
        health = session.get_one(t.AccountHealth, account.id)
        assert health.first_success_at == S + timedelta(hours=1)
        assert health.last_success_at == S + timedelta(hours=2)
