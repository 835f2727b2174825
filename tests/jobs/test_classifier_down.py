"""The classifier-down standing check, reported by the worker after each assessment run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from monitor.classify import ModelState, ModelStatus
from monitor.config_models import Config
from monitor.constants import Category
from monitor.storage import tables as t
from monitor.worker import Worker
from tests.jobs.test_escalation_flow import KeywordAssessor, Verdict


class ModelAssessor(KeywordAssessor):
    """Keyword verdicts, and a toxicity model whose state the test sets."""

    def __init__(self) -> None:
        self.status = ModelStatus(ModelState.NOT_LOADED, "test-model")

    @property
    def model_status(self) -> ModelStatus:
        return self.status

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
        return super().assess(texts, school_key=school_key)


def down_cases(world: Any) -> list[tuple[str, str, str | None]]:
    sessions = world[0]
    with sessions() as session:
        rows = session.scalars(
            select(t.Case)
            .where(t.Case.category == Category.CLASSIFIER_DOWN.value)
            .order_by(t.Case.id)
        ).all()
        return [(c.state, c.title, c.details.get("message")) for c in rows]


def test_one_case_while_the_model_is_down_closed_when_it_loads(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, _platform, pool = world
    assessor = ModelAssessor()
    nudged: list[str] = []
    worker = Worker(sessions, config, assessor, pool=pool, nudge=nudged.append)
    assert worker.model_status() is assessor.status

    worker.assess(now)  # not loaded yet: nothing to say
    assert down_cases(world) == []

    assessor.status = ModelStatus(
        ModelState.UNAVAILABLE, "test-model", reason="no file", fix="download it", down_since=now
    )
    for minutes in (0, 5, 10):  # one case while it stays down, not one per run
        worker.assess(now + timedelta(minutes=minutes))
    title = "Toxicity model unavailable: comments are checked by the rules alone"
    assert down_cases(world) == [("new", title, assessor.status.message())]
    with sessions() as session:
        [case_id] = session.scalars(
            select(t.Case.id).where(t.Case.category == Category.CLASSIFIER_DOWN.value)
        ).all()
        assert session.scalars(select(t.Alert).where(t.Alert.case_id == case_id)).all()

    assessor.status = ModelStatus(ModelState.NOT_LOADED, "test-model")
    worker.assess(now + timedelta(minutes=15))  # says nothing either way: the case stays
    assert [state for state, _, _ in down_cases(world)] == ["new"]

    assessor.status = ModelStatus(ModelState.LOADED, "test-model")
    worker.assess(now + timedelta(minutes=20))
    assert [state for state, _, _ in down_cases(world)] == ["closed"]


def test_an_assessor_without_a_model_opens_nothing(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, _platform, pool = world
    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)
    assert worker.model_status() is None
    worker.assess(now)
    assert down_cases(world) == []


def test_every_model_state_is_read() -> None:
    from monitor.worker import LOADED

    assert set(LOADED) == set(ModelState)
