"""Triage: the rules run as comments are stored, and the ones they flag are scored first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.classify.pipeline import ClassifierPipeline, Triaged
from monitor.config_models import Classifier, Config
from monitor.constants import Category
from monitor.directory import load_directory
from monitor.jobs.assess import BATCH, URGENT_BATCH, assess_pending
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.jobs.triage import HEAD_START, Triage, TriagingAssessor, deadline
from monitor.policy import item_policy
from monitor.storage import tables as t
from monitor.worker import Worker
from tests.jobs.test_escalation_flow import HANDLE, KeywordAssessor, Verdict


@dataclass(frozen=True)
class Flag:
    urgent: bool
    grave: bool = False

    @property
    def priority(self) -> int:
        return (1 + self.grave) if self.urgent else 0


@dataclass
class TriagingKeywords(KeywordAssessor):
    """KeywordAssessor that triages 'ABUSE' and 'HELPME' as urgent and records its calls."""

    batches: list[list[str]] = field(default_factory=list)
    triaged_texts: list[str] = field(default_factory=list)
    given: list[Sequence[Any] | None] = field(default_factory=list)

    def triage(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Flag]:
        self.triaged_texts.extend(texts)
        return [Flag("ABUSE" in text or "HELPME" in text, "HELPME" in text) for text in texts]

    def assess(
        self,
        texts: Sequence[str],
        *,
        school_key: str | None = None,
        triaged: Sequence[Any] | None = None,
    ) -> list[Verdict]:
        self.batches.append(list(texts))
        self.given.append(triaged)
        return super().assess(texts, school_key=school_key)


def poll_all(sessions: sessionmaker[Session], pool: ConnectorPool, now: datetime) -> list[int]:
    """Poll until the fake platform has nothing new (it returns a few pages a poll)."""
    stored: list[int] = []
    while new := poll_account(sessions, "oakfield-bluesky", pool, now).new_item_ids:
        stored.extend(new)
    return stored


def run(
    sessions: sessionmaker[Session],
    config: Config,
    assessor: Any,
    triage: Triage | None,
    now: datetime,
) -> Any:
    return assess_pending(
        sessions,
        assessor,
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
        now=now,
        triage=triage,
    )


def test_urgent_comments_are_scored_ahead_of_a_backlog(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    for n in range(BATCH * 2):
        platform.add(HANDLE, f"lovely photos {n}", now)
    platform.add(HANDLE, "you are ABUSE", now)
    platform.add(HANDLE, "HELPME please", now)
    stored = poll_all(sessions, pool, now)
    assessor = TriagingKeywords()
    triage = Triage(assessor)
    assert triage.run(sessions, stored, now) == 2
    assert len(assessor.triaged_texts) == BATCH * 2 + 2

    first = run(sessions, config, assessor, triage, now)
    # the two flagged comments, stored last, are scored first (the graver one first), with
    # their triage passed on
    assert assessor.batches == [["HELPME please", "you are ABUSE"]]
    assert assessor.given[0] == [Flag(True, True), Flag(True)]
    assert first.assessed == 2 and len(first.cases_opened) == 2 and first.more
    with sessions() as session:
        opened = session.scalars(select(t.Case.category)).all()
        assert sorted(opened) == sorted([Category.ABUSIVE.value, Category.SAFEGUARDING.value])

    second = run(sessions, config, assessor, triage, now)
    # then the backlog, oldest first, in full batches
    assert assessor.batches[1] == [f"lovely photos {n}" for n in range(BATCH)]
    assert assessor.given[1] == [Flag(False)] * BATCH
    assert second.assessed == BATCH and second.more
    third = run(sessions, config, assessor, triage, now)
    assert third.assessed == BATCH and third.more  # a full batch: there may be more
    assert run(sessions, config, assessor, triage, now).assessed == 0
    assert len(triage) == 0  # everything triaged was taken


def test_urgent_comments_go_in_small_batches(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    for n in range(URGENT_BATCH + 5):
        platform.add(HANDLE, f"ABUSE {n}", now)
    stored = poll_all(sessions, pool, now)
    assessor = TriagingKeywords()
    triage = Triage(assessor)
    triage.run(sessions, stored, now)
    run(sessions, config, assessor, triage, now)
    run(sessions, config, assessor, triage, now)
    assert [len(b) for b in assessor.batches] == [URGENT_BATCH, 5]


def test_items_assessed_elsewhere_are_forgotten(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    platform.add(HANDLE, "lovely photos", now)
    stored = poll_all(sessions, pool, now)
    assessor = TriagingKeywords()
    triage = Triage(assessor)
    triage.run(sessions, stored, now)
    # another process (`monitor poll --once`) assesses them without this triage
    assert run(sessions, config, KeywordAssessor(), None, now).assessed == 2
    platform.add(HANDLE, "more photos", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    report = run(sessions, config, assessor, triage, now)
    assert report.assessed == 1 and assessor.batches == [["more photos"]]
    assert len(triage) == 0 and triage.urgent(10) == []


def test_triage_is_bounded(now: datetime) -> None:
    triage = Triage(TriagingKeywords(), limit=2)
    assert triage.put(1, Flag(True), now) and triage.put(2, Flag(False), now)
    assert not triage.put(3, Flag(True), now)  # full: item 3 is scored in its turn
    assert triage.urgent(10) == [1]
    assert triage.put(2, Flag(True, grave=True), now)  # an update of one already held is kept
    assert triage.urgent(10) == [2, 1]  # the gravest first
    assert triage.put(2, Flag(True), now)
    assert triage.urgent(10) == [1, 2]  # then the oldest
    assert triage.take(1) == Flag(True) and triage.take(1) is None
    triage.discard_below(3)
    assert len(triage) == 0


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        # (item id, grave?, seconds after the first was found) -> order scored; the milder
        # (priority 1) has a 60 s head start, the graver (priority 2) 30 s: 30 s between them
        ([(1, False, 0), (2, True, 0)], [2, 1]),  # found together: the gravest first
        ([(1, False, 0), (2, True, 29)], [2, 1]),  # graver, found within the 30 s gap
        ([(1, False, 0), (2, True, 31)], [1, 2]),  # after it: the milder one has waited enough
        ([(1, True, 0), (2, True, 0)], [1, 2]),  # equals: the oldest first
        ([(1, False, 0), (2, False, 0), (3, True, 10)], [3, 1, 2]),
    ],
)
def test_graver_comments_go_first_but_never_starve_the_milder(
    now: datetime, found: list[tuple[int, bool, int]], expected: list[int]
) -> None:
    triage = Triage(TriagingKeywords())
    for item_id, grave, after in found:
        triage.put(item_id, Flag(True, grave=grave), now + timedelta(seconds=after))
    assert triage.urgent(10) == expected


def test_head_starts_shrink_as_the_severity_grows(now: datetime) -> None:
    ordered = [HEAD_START[p] for p in sorted(HEAD_START)]
    assert ordered == sorted(ordered, reverse=True) and HEAD_START[max(HEAD_START)] == timedelta(0)
    assert deadline(1, now) - now == HEAD_START[1] == timedelta(seconds=60)
    assert deadline(2, now) - now == timedelta(seconds=30)
    assert deadline(99, now) - now == max(HEAD_START.values())  # unknown: the longest wait


def test_the_pipeline_triages_with_its_rules_and_reuses_the_hits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = ClassifierPipeline(
        Classifier(
            checkpoint="/nonexistent/model.ckpt",
            huggingface_config_path="/nonexistent",
            concern={"enabled": False},
        ),
        [],
    )
    assert isinstance(pipeline, TriagingAssessor)
    texts = [
        "I am going to kill you when you leave school",
        "my stepdad hits me and I am scared to go home",
        "you are a useless idiot",
        "What time does the fair start on Saturday?",
        "Lovely photos of sports day",
    ]
    triaged = pipeline.triage(texts)
    assert [t.urgent for t in triaged] == [True, True, True, False, False]
    # a threat or a disclosure (critical) before an insult (medium)
    assert triaged[0].priority > triaged[2].priority and triaged[1].priority > triaged[2].priority
    assert all(isinstance(t, Triaged) for t in triaged)
    plain = pipeline.assess(texts)

    engine = pipeline.engine(None)
    runs: list[str] = []
    real_run = engine.run

    def counted_run(text: str) -> Any:
        runs.append(text)
        return real_run(text)

    monkeypatch.setattr(engine, "run", counted_run)
    reused = pipeline.assess(texts, triaged=[*triaged[:4], None])
    assert runs == ["Lovely photos of sports day"]  # only the one not triaged
    assert [a.to_json() for a in reused] == [a.to_json() for a in plain]
    with pytest.raises(ValueError, match="one entry per text"):
        pipeline.assess(texts, triaged=triaged[:2])


def test_a_poll_triages_what_it_stores(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    assessor = TriagingKeywords()
    worker = Worker(sessions, config, assessor, pool=pool)
    assert worker.triage is not None
    nudged: list[str] = []
    worker.nudge = nudged.append
    platform.add(HANDLE, "you are ABUSE", now)
    platform.add(HANDLE, "lovely photos", now)
    worker.poll("oakfield-bluesky", now)
    assert assessor.triaged_texts == ["you are ABUSE", "lovely photos"]
    assert len(worker.triage.urgent(10)) == 1 and "assess" in nudged
    report = worker.assess(now)
    assert report.assessed == 2 and assessor.batches == [["you are ABUSE"], ["lovely photos"]]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(t.Assessment)) == 2


def test_a_worker_without_a_triaging_assessor_scores_in_order(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, _, pool = world
    assert Worker(sessions, config, KeywordAssessor(), pool=pool).triage is None


def test_a_triage_failure_never_fails_the_poll(
    world: Any, config: Config, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    sessions, platform, pool = world

    class Broken(TriagingKeywords):
        def triage(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Flag]:
            raise RuntimeError("rules exploded")

    worker = Worker(sessions, config, Broken(), pool=pool)
    platform.add(HANDLE, "you are ABUSE", now)
    outcome = worker.poll("oakfield-bluesky", now)
    assert outcome.ok and len(outcome.new_item_ids) == 1
    assert "triage of 1 new items failed" in caplog.text
    assert worker.assess(now).assessed == 1  # scored in its turn
