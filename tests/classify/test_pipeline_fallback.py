"""The pipeline: lazy load, rules-only fallback, one alert, retry after back-off, rescoring."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.classify.pipeline import ClassifierPipeline, ModelState, ModelStatus
from monitor.config_models import Classifier, School, UnknownSchool
from monitor.constants import Category, Severity
from tests.classify.classify_support import TinyModel

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _pipeline(
    checkpoint: Path, folder: Path, clock: Clock, changes: list[ModelStatus], **extra: object
) -> ClassifierPipeline:
    config = Classifier(checkpoint=str(checkpoint), huggingface_config_path=str(folder), **extra)
    return ClassifierPipeline(
        config,
        [School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield"])],
        clock=clock,
        on_status_change=changes.append,
    )


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow
def test_model_loads_lazily_on_first_assess(tiny_model: TinyModel) -> None:
    changes: list[ModelStatus] = []
    pipeline = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), changes)
    assert pipeline.model_status.state is ModelState.NOT_LOADED
    [assessment] = pipeline.assess(["Thank you, lovely photos"])
    assert pipeline.model_status.available
    assert assessment.model == "detoxify/model.ckpt+concern/minilm-l6-v3"
    assert set(assessment.scores) >= {"toxicity", "threat", "concern_safeguarding"}
    assert changes == []  # loading fine the first time is not news


@pytest.mark.slow
def test_bad_path_gives_rules_only_one_error_one_alert_then_recovers(
    tiny_model: TinyModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, changes = Clock(), list[ModelStatus]()
    folder = tmp_path / "hf"
    shutil.copytree(tiny_model.folder, folder)
    checkpoint = folder / "later.ckpt"  # not there yet
    pipeline = _pipeline(checkpoint, folder, clock, changes)
    caplog.set_level(logging.DEBUG, logger="monitor.classify")

    first = pipeline.assess(["I want to kill myself", "Lovely assembly"])
    assert [a.model for a in first] == [None, None]  # unscored: to be rescored later
    # the concern model degrades alone: it still scores while Detoxify is down
    assert all(
        a.unscored
        and set(a.scores) == {"concern_safeguarding", "concern_threat", "concern_negative"}
        for a in first
    )
    assert first[0].has(Category.SAFEGUARDING)  # the rules still work
    assert first[0].severity is Severity.CRITICAL
    status = pipeline.model_status
    assert status.state is ModelState.UNAVAILABLE
    assert "does not exist" in (status.reason or "") and "fix the path" in (status.fix or "")
    assert status.down_since == T0 and status.next_retry_at == T0 + timedelta(minutes=1)
    [error] = _errors(caplog)
    assert "later.ckpt does not exist" in error.getMessage()
    assert "Fix:" in error.getMessage()
    assert len(changes) == 1 and changes[0].state is ModelState.UNAVAILABLE

    # before the back-off ends nothing is retried; after it a failed retry stays quiet
    clock.now += timedelta(seconds=30)
    pipeline.assess(["hello"])
    assert pipeline.model_status.failures == 1
    clock.now += timedelta(seconds=31)
    pipeline.assess(["hello"])
    assert pipeline.model_status.failures == 2
    assert pipeline.model_status.next_retry_at == clock.now + timedelta(minutes=2)  # doubled
    assert pipeline.model_status.down_since == T0
    assert len(_errors(caplog)) == 1 and len(changes) == 1

    # the file appears; after the back-off the model loads and unscored items can be rescored
    shutil.copy(tiny_model.checkpoint, checkpoint)
    clock.now += timedelta(minutes=1)
    assert pipeline.assess(["hello"])[0].model is None  # still waiting for its retry time
    clock.now += timedelta(minutes=1)
    rescored = pipeline.assess(["I want to kill myself", "Lovely assembly"])
    assert all(a.model == "detoxify/later.ckpt+concern/minilm-l6-v3" and a.scores for a in rescored)
    assert rescored[0].has(Category.SAFEGUARDING)
    assert [c.state for c in changes] == [ModelState.UNAVAILABLE, ModelState.LOADED]
    assert len(_errors(caplog)) == 1


def test_back_off_is_capped(tiny_model: TinyModel, tmp_path: Path) -> None:
    clock, changes = Clock(), list[ModelStatus]()
    pipeline = _pipeline(tmp_path / "none.ckpt", tiny_model.folder, clock, changes)
    for _ in range(12):
        pipeline.load(force=True)
    status = pipeline.model_status
    assert status.failures == 12
    assert status.next_retry_at == clock.now + timedelta(minutes=30)
    assert len(changes) == 1


def test_status_message_is_ready_for_an_it_alert(tiny_model: TinyModel, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path / "none.ckpt", tiny_model.folder, Clock(), [])
    pipeline.assess(["hello"])
    message = pipeline.model_status.message()
    assert "unavailable since 2026-11-23 09:30 UTC" in message
    assert "none.ckpt does not exist" in message
    assert "Fix: fix the path" in message
    assert "rescored" in message


def test_a_failing_callback_does_not_break_classification(
    tiny_model: TinyModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(status: ModelStatus) -> None:
        raise RuntimeError("alert path down")

    config = Classifier(checkpoint=str(tmp_path / "none.ckpt"))
    pipeline = ClassifierPipeline(config, clock=Clock(), on_status_change=explode)
    assert pipeline.assess(["Watch your back"])[0].has(Category.THREAT)
    assert any("callback failed" in r.getMessage() for r in caplog.records)


def test_thresholds_decide_the_model_categories(tiny_model: TinyModel) -> None:
    always = dict.fromkeys(("toxicity", "threat"), 0.0)
    never = dict.fromkeys(("toxicity", "threat", "severe_toxicity", "insult"), 1.0)
    flagged = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), [], thresholds=always)
    calm = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), [], thresholds=never)
    [hit] = flagged.assess(["Lovely assembly"])
    [miss] = calm.assess(["Lovely assembly"])
    assert hit.categories == {Category.ABUSIVE, Category.THREAT}
    assert set(hit.rule_ids()) == {"MODEL-TOXICITY", "MODEL-THREAT"}
    assert hit.severity is Severity.HIGH
    model_match = hit.matches[0]
    assert (model_match.start, model_match.end, model_match.matched) == (0, 0, "")
    assert ">= 0.00" in model_match.reason
    assert miss.categories == frozenset() and miss.severity is Severity.NONE
    assert miss.scores == hit.scores  # the same model, the same text


def test_identity_labels_of_the_unbiased_model_never_raise_a_category(
    tiny_model: TinyModel,
) -> None:
    from monitor.classify.engine import combine

    scores = {"toxicity": 0.1, "muslim": 0.99, "homosexual_gay_or_lesbian": 0.99, "black": 0.99}
    assessment = combine([], scores, {"toxicity": 0.8, "muslim": 0.5}, "m")
    assert assessment.categories == frozenset()


def test_allow_terms_are_masked_for_the_model_and_never_flag(tiny_model: TinyModel) -> None:
    school = School(
        key="penistone",
        name="Penistone Grammar",
        allow_terms=["Penistone"],
        extra_terms={Category.ABUSIVE: ["pound shop headteacher"]},
    )
    pipeline = ClassifierPipeline(
        Classifier(
            checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
        ),
        [school],
        clock=Clock(),
    )
    engine = pipeline.engine("penistone")
    assert engine.for_model("Go Penistone! PENISTONE rocks") == "Go name! name rocks"
    [masked, plain] = pipeline.assess(["Go Penistone!", "Go name!"], school_key="penistone")
    # the same text to the models (rows of one batch may differ in the last float bits)
    assert masked.scores.keys() == plain.scores.keys()
    assert masked.scores == pytest.approx(plain.scores, abs=1e-6)
    [unmasked] = ClassifierPipeline(
        Classifier(
            checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
        ),
        [],
        clock=Clock(),
    ).assess(["Go Penistone!"])
    assert unmasked.scores != pytest.approx(plain.scores, abs=1e-6)
    [extra] = pipeline.assess(["a pound-shop headteacher"], school_key="penistone")
    assert extra.rule_ids() == ("SCHOOL-ABUSIVE",)
    with pytest.raises(UnknownSchool, match="unknown school"):
        pipeline.assess(["x"], school_key="nowhere")


def test_a_second_pipeline_reuses_the_loaded_model(tiny_model: TinyModel) -> None:
    a = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), [])
    b = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), [])
    a.load()
    b.load()
    assert a._model is not None and b._model is not None
    assert a._model.detoxify is b._model.detoxify  # once per process


def test_no_texts_no_work(tiny_model: TinyModel) -> None:
    pipeline = _pipeline(tiny_model.checkpoint, tiny_model.folder, Clock(), [])
    assert pipeline.assess([]) == []
    assert pipeline.model_status.state is ModelState.NOT_LOADED


def test_without_the_concern_model_only_detoxify_scores(tiny_model: TinyModel) -> None:
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint),
        huggingface_config_path=str(tiny_model.folder),
        concern={"enabled": False},
    )
    [assessment] = ClassifierPipeline(config).assess(["I can't go on any more"])
    assert assessment.model == "detoxify/model.ckpt"
    assert not any(label.startswith("concern_") for label in assessment.scores)


def test_a_concern_model_that_cannot_load_means_rules_only_with_the_cause(
    tiny_model: TinyModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "minilm"
    empty.mkdir()
    changes: list[ModelStatus] = []
    pipeline = _pipeline(
        tiny_model.checkpoint,
        tiny_model.folder,
        Clock(),
        changes,
        concern={"model_path": str(empty)},
    )
    with caplog.at_level(logging.ERROR):
        [assessment] = pipeline.assess(["I want to kill myself"])
    assert assessment.model is None  # unscored: rescored once both models load
    assert assessment.has(Category.SAFEGUARDING)  # the rules still catch what they list
    status = pipeline.model_status
    assert status.state is ModelState.UNAVAILABLE
    assert "has no model.safetensors" in (status.reason or "")
    assert "model_path" in (status.fix or "")
    assert changes == [status] and len(_errors(caplog)) == 1


def test_with_detoxify_down_the_concern_model_still_scores_and_raises_safeguarding(
    tiny_model: TinyModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[ModelStatus] = []
    clock = Clock()
    missing = tmp_path / "later.ckpt"
    pipeline = _pipeline(missing, tiny_model.folder, clock, changes)
    # a phrasing no lexicon lists: only the concern model can raise it
    text = "been giving my things away to my mates this week, wont need them where im going"
    assert not pipeline.engine().run(text)
    with caplog.at_level(logging.ERROR):
        [assessment] = pipeline.assess([text])
    assert "MODEL-SAFEGUARDING" in assessment.rule_ids(Category.SAFEGUARDING)
    assert set(assessment.scores) == {
        "concern_safeguarding",
        "concern_threat",
        "concern_negative",
    }  # no toxicity
    assert assessment.model is None  # unscored: rescored once Detoxify is back
    status = pipeline.model_status
    assert status.state is ModelState.UNAVAILABLE and "does not exist" in (status.reason or "")
    assert "the rules and the concern model" in status.message()
    assert changes == [status] and len(_errors(caplog)) == 1
    # Detoxify comes back: both score and the assessment is complete
    shutil.copy(tiny_model.checkpoint, missing)
    clock.now += timedelta(minutes=2)
    [again] = pipeline.assess([text])
    assert again.model == "detoxify/later.ckpt+concern/minilm-l6-v3"
    assert {"toxicity", "concern_safeguarding"} <= set(again.scores)


def test_with_the_encoder_down_detoxify_still_scores(tiny_model: TinyModel, tmp_path: Path) -> None:
    empty = tmp_path / "minilm"
    empty.mkdir()
    pipeline = _pipeline(
        tiny_model.checkpoint, tiny_model.folder, Clock(), [], concern={"model_path": str(empty)}
    )
    [assessment] = pipeline.assess(["Is the school open tomorrow?"])
    assert "toxicity" in assessment.scores and "concern_safeguarding" not in assessment.scores
    assert assessment.model is None  # rescored once the concern model loads
    assert "the rules and the toxicity model" in pipeline.model_status.message()
