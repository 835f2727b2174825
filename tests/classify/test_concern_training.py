"""Training the concern heads: the pure parts as tables, and the shipped file as reproducible."""

from __future__ import annotations

import json

import pytest
import torch

from monitor.classify.concern import HEADS_FILE, ConcernModel, builtin_heads
from monitor.classify.concern_training import (
    DEFAULT_DATA,
    Operating,
    fit_logistic,
    heads_document,
    operating_point,
    predict,
    stratified_folds,
    train,
)
from monitor.config_models import Concern

PROBS = torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
TRUTH = torch.tensor([1, 1, 0, 1, 1, 0, 1, 0, 0, 0]).float()


@pytest.mark.parametrize(
    ("min_precision", "expected"),
    [
        # lowest threshold whose precision reaches the floor: recall first
        (0.8, Operating(0.6, 0.8, 0.8)),
        (0.75, Operating(0.6, 0.8, 0.8)),  # 0.3 flags 7 for 5 right: precision 0.71
        (0.6, Operating(0.3, 5 / 7, 1.0)),
        (1.0, Operating(0.85, 1.0, 0.4)),
    ],
)
def test_operating_point(min_precision: float, expected: Operating) -> None:
    grid = (0.3, 0.6, 0.85)
    got = operating_point(PROBS, TRUTH, min_precision=min_precision, grid=grid)
    assert got.threshold == expected.threshold
    assert got.precision == pytest.approx(expected.precision)
    assert got.recall == pytest.approx(expected.recall)


def test_operating_point_without_a_precise_threshold_takes_the_most_precise() -> None:
    noise = torch.tensor([0.9, 0.9, 0.9, 0.9])
    got = operating_point(noise, torch.tensor([1, 0, 0, 0]).float(), grid=(0.5, 0.95))
    assert got == Operating(0.95, 1.0, 0.0)  # flags nothing rather than mostly false alarms


@pytest.mark.parametrize(
    ("labels", "folds", "expected"),
    [
        ([True, False, True, False, True, True], 2, [0, 0, 1, 1, 0, 1]),
        ([True] * 3 + [False] * 3, 3, [0, 1, 2, 0, 1, 2]),
        ([False], 5, [0]),
    ],
)
def test_folds_deal_each_class_round_robin(
    labels: list[bool], folds: int, expected: list[int]
) -> None:
    assert stratified_folds(labels, folds) == expected


def test_logistic_fit_separates_and_is_deterministic() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(200, 8, generator=generator)
    y = (x[:, 0] - 0.5 * x[:, 3] > 0.2).float()
    first, second = fit_logistic(x, y, l2=1e-4), fit_logistic(x, y, l2=1e-4)
    assert torch.equal(first.weights, second.weights) and first.bias == second.bias
    accuracy = float(((predict(first, x) >= 0.5).float() == y).float().mean())
    assert accuracy > 0.97
    assert abs(float(first.weights[0])) > 5 * abs(float(first.weights[5]))  # found the signal
    with pytest.raises(ValueError, match="both positive and negative"):
        fit_logistic(x, torch.ones(200), l2=1e-3)


@pytest.mark.slow
def test_the_shipped_heads_are_what_the_labelled_comments_train() -> None:
    shipped = json.loads(HEADS_FILE.read_text(encoding="utf-8"))
    files = [path for path in DEFAULT_DATA if path.name in shipped["trained_on"]["files"]]
    assert [p.name for p in files] == list(shipped["trained_on"]["files"])
    encoder = ConcernModel.load(Concern()).encoder
    trained, examples = train(files, encoder)
    rebuilt = heads_document(trained, examples, files)
    assert rebuilt["trained_on"] == shipped["trained_on"]  # the same data, byte for byte
    for new, old in zip(rebuilt["heads"], shipped["heads"], strict=True):  # type: ignore[call-overload]
        assert new["label"] == old["label"]
        assert (new["threshold"], new["l2"]) == (old["threshold"], old["l2"])
        assert new["out_of_fold"] == old["out_of_fold"]
        assert max(abs(a - b) for a, b in zip(new["weights"], old["weights"], strict=True)) < 1e-4
    assert builtin_heads().version == rebuilt["version"]
