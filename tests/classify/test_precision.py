"""The int8 guard: table tests of its decision, its cache by model fingerprint, real weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.classify.concern import CONCERN_LABELS
from monitor.classify.pipeline import ClassifierPipeline
from monitor.classify.precision import (
    PrecisionStore,
    calibration_texts,
    choose,
    compare,
    run_guard,
)
from monitor.config_models import Classifier
from tests.classify.classify_support import LABELLED, TinyModel

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
THRESHOLDS = {"toxicity": 0.8, "threat": 0.6, "male": None}


def _rows(*values: tuple[float, float, float]) -> list[dict[str, float]]:
    return [{"toxicity": t, "threat": h, "male": m} for t, h, m in values]


FP32 = _rows((0.10, 0.05, 0.5), (0.79, 0.61, 0.5), (0.95, 0.20, 0.5))


@pytest.mark.parametrize(
    ("case", "int8", "requested", "mode", "disagreements", "reason_part"),
    [
        (
            "agree",
            _rows((0.11, 0.05, 0.51), (0.785, 0.615, 0.49), (0.94, 0.21, 0.5)),
            "auto",
            "int8",
            0,
            "all 6 category decisions agree",
        ),
        (
            "disagree",  # toxicity crosses 0.8 by 0.011: within the tolerance, still refused
            _rows((0.10, 0.05, 0.5), (0.801, 0.61, 0.5), (0.95, 0.20, 0.5)),
            "auto",
            "fp32",
            1,
            "1 of 6 category decisions differ (first: toxicity on comment 2: 0.790 vs 0.801)",
        ),
        (
            "tolerance exceeded",  # no decision flips, but threat moves by 0.15
            _rows((0.10, 0.20, 0.5), (0.79, 0.61, 0.5), (0.95, 0.20, 0.5)),
            "auto",
            "fp32",
            0,
            "0.1500 (threat) is above the tolerance 0.02",
        ),
        (
            "unthresholded label moves",  # identity labels raise nothing but count for the diff
            _rows((0.10, 0.05, 0.9), (0.79, 0.61, 0.5), (0.95, 0.20, 0.5)),
            "auto",
            "fp32",
            0,
            "(male) is above the tolerance",
        ),
        (
            "forced",
            _rows((0.10, 0.05, 0.5), (0.801, 0.61, 0.5), (0.95, 0.20, 0.5)),
            "int8",
            "int8",
            1,
            "int8 forced by classifier.precision; 1 of 6 category decisions differ",
        ),
    ],
)
def test_the_guard_decides_from_decisions_and_the_largest_difference(
    case: str,
    int8: list[dict[str, float]],
    requested: str,
    mode: str,
    disagreements: int,
    reason_part: str,
) -> None:
    found = compare(FP32, int8, THRESHOLDS)
    assert found.disagreements == disagreements
    assert found.decisions == 6  # 3 comments x 2 labels with a threshold
    chosen, reason = choose(requested, found, 0.02)  # type: ignore[arg-type]
    assert chosen == mode, case
    assert reason_part in reason


def test_a_missing_or_nan_score_counts_as_the_worst_difference() -> None:
    found = compare(FP32[:1], [{"toxicity": float("nan"), "threat": 0.05, "male": 0.5}], {})
    assert found.max_diff == float("inf") and found.worst_label == "toxicity"
    assert choose("auto", found, 0.02)[0] == "fp32"
    with pytest.raises(ValueError):
        compare(FP32, FP32[:2], THRESHOLDS)


class _Scorer:
    """Scores from a table, counting the texts it was asked to score."""

    def __init__(self, shift: float) -> None:
        self.shift = shift
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.texts += len(texts)
        return [{"toxicity": min(1.0, 0.01 * len(t) + self.shift)} for t in texts]


def _guard(
    store: PrecisionStore,
    fingerprint: str,
    fp32: _Scorer,
    int8: _Scorer,
    requested: str = "auto",
    now: datetime = NOW,
) -> object:
    return run_guard(
        model="detoxify/original",
        fingerprint=fingerprint,
        score_fp32=fp32,
        score_int8=int8,
        thresholds={"toxicity": 0.8},
        tolerance=0.02,
        requested=requested,  # type: ignore[arg-type]
        store=store,
        now=now,
        texts=["short", "a somewhat longer comment", "x" * 79],
    )


def test_figures_are_stored_by_fingerprint_and_a_swapped_model_runs_the_guard_again(
    tmp_path: Path,
) -> None:
    store = PrecisionStore(tmp_path / "classifier-precision.json")
    fp32, int8 = _Scorer(0.0), _Scorer(0.001)
    first = _guard(store, "a" * 64, fp32, int8)
    assert first.mode == "int8" and first.comments == 3 and first.disagreements == 0  # type: ignore[attr-defined]
    assert (fp32.texts, int8.texts) == (3, 3)
    # the same weights again (another process: only the file): nothing is scored
    PrecisionStore._memory.clear()
    again = _guard(PrecisionStore(store.path), "a" * 64, fp32, int8)
    assert again == first and (fp32.texts, int8.texts) == (3, 3)
    # a swapped model (new checkpoint hash) is checked again, and this one fails
    worse = _Scorer(0.05)
    swapped = _guard(store, "b" * 64, fp32, worse, now=NOW.replace(hour=23))
    assert swapped.mode == "fp32" and worse.texts == 3  # type: ignore[attr-defined]
    assert "1 of 3 category decisions differ" in swapped.reason  # type: ignore[attr-defined]
    stored = json.loads(store.path.read_text())
    assert {entry["fingerprint"][0] for entry in stored.values()} == {"a", "b"}
    # status shows the newest figures of each model
    [latest] = store.latest()
    assert latest.fingerprint == "b" * 64 and "fp32 (precision auto)" in latest.summary()
    # forcing int8 reuses the measurement but reports int8
    forced = _guard(store, "b" * 64, fp32, worse, requested="int8")
    assert forced.mode == "int8" and worse.texts == 3  # type: ignore[attr-defined]
    assert forced.reason.startswith("int8 forced")  # type: ignore[attr-defined]


def test_without_its_folder_the_store_keeps_figures_in_memory_only(tmp_path: Path) -> None:
    store = PrecisionStore(tmp_path / "absent" / "classifier-precision.json")
    fp32, int8 = _Scorer(0.0), _Scorer(0.0)
    _guard(store, "c" * 64, fp32, int8)
    _guard(store, "c" * 64, fp32, int8)
    assert fp32.texts == 3 and not store.path.parent.exists()


def test_the_shipped_calibration_set_is_the_labelled_set() -> None:
    labelled = [json.loads(line)["text"] for line in LABELLED.read_text().splitlines()]
    assert list(calibration_texts()) == labelled


def test_forced_int8_on_the_tiny_model_reports_its_figures(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint),
        huggingface_config_path=str(tiny_model.folder),
        precision="int8",
        concern={"enabled": False},
    )
    store = PrecisionStore(tmp_path / "classifier-precision.json")
    pipeline = ClassifierPipeline(config, clock=lambda: NOW, precision_store=store)
    assert pipeline.load().available
    figures = pipeline.precision_figures["detoxify/model.ckpt"]
    assert figures.mode == "int8" and figures.comments == len(calibration_texts())
    assert figures.decisions == 6 * figures.comments and figures.max_diff > 0  # really int8
    model = pipeline._model
    assert model is not None and model.precision == "int8"
    text = ["What a lovely assembly"]
    assert model.score(text) != model.score(text, precision="fp32")
    assert store.latest() == [figures]
    fp32_only = ClassifierPipeline(
        config.model_copy(update={"precision": "fp32"}), precision_store=store
    )
    assert fp32_only.load().available and fp32_only.precision_figures == {}
    assert fp32_only._model is not None and fp32_only._model.precision == "fp32"


@pytest.mark.slow
def test_the_guard_on_the_real_minilm_encoder_and_the_concern_head(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    """Real trained weights, offline: int8 is used only if every decision agrees."""
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
    )
    store = PrecisionStore(tmp_path / "classifier-precision.json")
    pipeline = ClassifierPipeline(config, clock=lambda: NOW, precision_store=store)
    assert pipeline.load().available
    figures = pipeline.precision_figures["concern/minilm-l6-v3"]
    assert figures.comments == len(calibration_texts())
    assert figures.decisions == figures.comments * len(CONCERN_LABELS)  # every head's decision
    agrees = figures.disagreements == 0 and figures.max_diff <= 0.02
    assert figures.mode == ("int8" if agrees else "fp32")
    assert pipeline._concern is not None and pipeline._concern.precision == figures.mode
    print(figures.summary())  # the README quotes it


def test_identical_texts_in_one_batch_are_scored_once(tiny_model: TinyModel) -> None:
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint),
        huggingface_config_path=str(tiny_model.folder),
        precision="fp32",
    )
    pipeline = ClassifierPipeline(config)
    assert pipeline.load().available
    model, concern = pipeline._model, pipeline._concern
    assert model is not None and concern is not None
    rows, embedded = model.rows_scored, concern.encoder.rows_embedded
    pile_on = ["get rid of the head"] * 40 + ["shame on this school"] * 9 + ["lovely"]
    assessments = pipeline.assess(pile_on)
    assert model.rows_scored - rows == 3  # three distinct texts, not fifty
    assert concern.encoder.rows_embedded - embedded == 3
    assert assessments[0].scores == assessments[39].scores
    assert assessments[40].scores == assessments[48].scores != assessments[0].scores
