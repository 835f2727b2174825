"""A school no longer configured (archived) is an ``UnknownSchool``, never a stray ``KeyError``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from monitor.calendar import WorkingCalendar
from monitor.classify.pipeline import ClassifierPipeline
from monitor.config_models import Classifier, Config, UnknownSchool
from monitor.jobs.triage import Triage
from monitor.policy import item_policy
from tests.jobs.test_escalation_flow import HANDLE, Verdict
from tests.jobs.test_triage import Flag, TriagingKeywords, poll_all, run


def without_oakfield(config: Config) -> Config:
    """The trust after Oakfield was taken out of the configuration (its items stay stored)."""
    return config.model_copy(update={"schools": [s for s in config.schools if s.key != "oakfield"]})


class ConfiguredOnly(TriagingKeywords):
    """Refuses the schools ``config`` no longer has, as the real pipeline does."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.known = {s.key for s in config.schools}

    def _check(self, school_key: str | None) -> None:
        if school_key is not None and school_key not in self.known:
            raise UnknownSchool(school_key)

    def triage(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Flag]:
        self._check(school_key)
        return super().triage(texts, school_key=school_key)

    def assess(
        self,
        texts: Sequence[str],
        *,
        school_key: str | None = None,
        triaged: Sequence[Any] | None = None,
    ) -> list[Verdict]:
        self._check(school_key)
        return super().assess(texts, school_key=school_key, triaged=triaged)


def test_the_configuration_names_an_unknown_school() -> None:
    error = UnknownSchool("nowhere")
    assert isinstance(error, LookupError) and not isinstance(error, KeyError)
    assert error.key == "nowhere" and str(error) == "unknown school 'nowhere'"


def test_config_lookups_of_an_unknown_school_raise_unknown_school(config: Config) -> None:
    with pytest.raises(UnknownSchool):
        config.school("nowhere")
    with pytest.raises(UnknownSchool):
        config.timezone_of("nowhere")


def test_the_pipeline_refuses_an_unknown_school() -> None:
    pipeline = ClassifierPipeline(Classifier(), [])
    with pytest.raises(UnknownSchool, match="unknown school 'nowhere'"):
        pipeline.engine("nowhere")


def test_an_archived_schools_items_are_triaged_and_assessed_with_the_trusts_rules(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    stored = poll_all(sessions, pool, now)
    archived = without_oakfield(config)
    assessor = ConfiguredOnly(archived)
    triage = Triage(assessor)
    assert triage.run(sessions, stored, now) == 0  # scored in its turn instead
    report = run(sessions, archived, assessor, triage, now)
    assert report.assessed == 1 and len(report.cases_opened) == 1


def test_the_policy_of_an_archived_school_keeps_the_trusts_timezone(config: Config) -> None:
    calendar = item_policy(without_oakfield(config), "oakfield").calendar
    assert isinstance(calendar, WorkingCalendar)
    assert calendar.timezone == config.organisation.timezone


def test_a_key_error_inside_the_assessor_is_not_taken_for_an_unknown_school(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_all(sessions, pool, now)

    class Buggy(TriagingKeywords):
        def assess(
            self,
            texts: Sequence[str],
            *,
            school_key: str | None = None,
            triaged: Sequence[Any] | None = None,
        ) -> list[Verdict]:
            if school_key is not None:
                raise KeyError("toxicity")  # a defect, not a missing school
            return super().assess(texts, school_key=school_key, triaged=triaged)

    with pytest.raises(KeyError, match="toxicity"):
        run(sessions, config, Buggy(), None, now)


def test_a_key_error_inside_triage_is_not_taken_for_an_unknown_school(
    world: Any, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    stored = poll_all(sessions, pool, now)

    class Buggy(TriagingKeywords):
        def triage(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Flag]:
            raise KeyError("hits")

    with pytest.raises(KeyError, match="hits"):
        Triage(Buggy()).run(sessions, stored, now)
