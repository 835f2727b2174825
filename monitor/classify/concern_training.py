"""Train the concern heads on the labelled comments and write ``concern_heads.json``.

    .venv/bin/python -m monitor.classify.concern_training [--data FILE ...] [--out FILE]

Each head is a class-balanced, L2-regularised logistic regression on the encoder's sentence
vectors, fitted in float64 by L-BFGS from zero (so a rerun gives the same file). The L2
strength and the threshold are chosen by stratified k-fold cross-validation: the threshold
is the lowest on a grid whose out-of-fold precision reaches ``MIN_PRECISION`` (recall first,
since a missed disclosure is the costly mistake), and the out-of-fold figures are recorded
in the file. Comments of ``tests/data/blind_comments.jsonl`` and ``blind2_comments.jsonl`` are
never trained on: they measure what the heads have not seen (bench/blind_table.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from monitor.classify.concern import HEADS_FILE, Encoder, SentenceEncoder
from monitor.classify.evaluation import Example, load_examples
from monitor.config_models import Concern
from monitor.constants import Category

ENCODER = Encoder(
    repo="sentence-transformers/all-MiniLM-L6-v2",
    revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    files={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    pooling="mean",
    max_tokens=256,
)
HEAD_CATEGORIES = {
    "concern_safeguarding": Category.SAFEGUARDING,
    "concern_threat": Category.THREAT,
    "concern_negative": Category.NEGATIVE_MENTION,
}
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (
    REPO / "tests" / "data" / "labelled_comments.jsonl",
    REPO / "tests" / "data" / "training_comments.jsonl",
)
VERSION = "minilm-l6-v3"
FOLDS = 5
MIN_PRECISION = 0.8
L2_GRID = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 ... 0.90


@dataclass(frozen=True)
class Fit:
    """A fitted head: weights and bias."""

    weights: torch.Tensor
    bias: float


@dataclass(frozen=True)
class Operating:
    """A threshold and what it gives out of fold."""

    threshold: float
    precision: float
    recall: float


def fit_logistic(x: torch.Tensor, y: torch.Tensor, *, l2: float) -> Fit:
    """Class-balanced logistic regression with an L2 penalty on the weights (deterministic)."""
    x, y = x.double(), y.double()
    positives = float(y.mean())
    if not 0.0 < positives < 1.0:
        raise ValueError("training needs both positive and negative examples")
    sample_weight = torch.where(y > 0, 0.5 / positives, 0.5 / (1 - positives))
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weights, bias], max_iter=1000, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ weights + bias
        value = (
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=sample_weight)
            + l2 * (weights * weights).sum()
        )
        value.backward()  # type: ignore[no-untyped-call]
        return value

    optimiser.step(loss)  # type: ignore[no-untyped-call]
    return Fit(weights=weights.detach().float(), bias=float(bias.detach()))


def predict(fit: Fit, x: torch.Tensor) -> torch.Tensor:
    """Probabilities for the rows of ``x``."""
    return torch.sigmoid(x.float() @ fit.weights + fit.bias)


def stratified_folds(y: Sequence[bool], folds: int) -> list[int]:
    """A fold number per example, positives and negatives dealt round-robin (deterministic)."""
    fold = [0] * len(y)
    counters = {True: 0, False: 0}
    for index, label in enumerate(y):
        fold[index] = counters[label] % folds
        counters[label] += 1
    return fold


def out_of_fold(x: torch.Tensor, y: torch.Tensor, *, l2: float, folds: int = FOLDS) -> torch.Tensor:
    """Each example's probability from a head trained without its fold."""
    fold = torch.tensor(stratified_folds([bool(v) for v in y.tolist()], folds))
    probabilities = torch.empty(len(y))
    for k in range(folds):
        held = fold == k
        fitted = fit_logistic(x[~held], y[~held], l2=l2)
        probabilities[held] = predict(fitted, x[held])
    return probabilities


def operating_point(
    probabilities: torch.Tensor,
    y: torch.Tensor,
    *,
    min_precision: float = MIN_PRECISION,
    grid: Sequence[float] = THRESHOLD_GRID,
) -> Operating:
    """The lowest threshold whose precision reaches ``min_precision`` (else the most precise)."""
    truth = y.bool()
    points = []
    for threshold in grid:
        flagged = probabilities >= threshold
        true_pos = int((flagged & truth).sum())
        precision = true_pos / int(flagged.sum()) if int(flagged.sum()) else 1.0
        recall = true_pos / int(truth.sum()) if int(truth.sum()) else 1.0
        points.append(Operating(threshold, precision, recall))
    good = [p for p in points if p.precision >= min_precision]
    if good:
        return min(good, key=lambda p: p.threshold)
    return max(points, key=lambda p: (p.precision, -p.threshold))


@dataclass(frozen=True)
class TrainedHead:
    """A head with its chosen L2, threshold and out-of-fold figures."""

    label: str
    fit: Fit
    l2: float
    operating: Operating
    positives: int


def train_head(label: str, x: torch.Tensor, y: torch.Tensor) -> TrainedHead:
    """Pick the L2 strength by out-of-fold recall at the precision floor, then fit on all."""
    best: tuple[float, float, Operating] | None = None
    for l2 in L2_GRID:  # strongest first: ties keep the simpler head
        point = operating_point(out_of_fold(x, y, l2=l2), y)
        score = point.recall if point.precision >= MIN_PRECISION else point.precision - 1.0
        if best is None or score > best[0] + 1e-9:
            best = (score, l2, point)
    assert best is not None
    _, l2, point = best
    return TrainedHead(label, fit_logistic(x, y, l2=l2), l2, point, int(y.sum()))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def heads_document(
    trained: Sequence[TrainedHead], examples: Sequence[Example], files: Sequence[Path]
) -> dict[str, object]:
    """The JSON document ``concern.parse_heads`` reads."""
    return {
        "version": VERSION,
        "encoder": {
            "repo": ENCODER.repo,
            "revision": ENCODER.revision,
            "files": dict(ENCODER.files),
            "pooling": ENCODER.pooling,
            "max_tokens": ENCODER.max_tokens,
        },
        "trained_on": {
            "examples": len(examples),
            "files": {path.name: _digest(path) for path in files},
            "folds": FOLDS,
            "min_precision": MIN_PRECISION,
        },
        "heads": [
            {
                "label": head.label,
                "threshold": head.operating.threshold,
                "l2": head.l2,
                "positives": head.positives,
                "out_of_fold": {
                    "precision": round(head.operating.precision, 4),
                    "recall": round(head.operating.recall, 4),
                },
                "bias": head.fit.bias,
                "weights": [round(float(w), 7) for w in head.fit.weights],
            }
            for head in trained
        ],
    }


def train(
    files: Sequence[Path], encoder: SentenceEncoder
) -> tuple[list[TrainedHead], list[Example]]:
    """Embed the labelled comments of ``files`` and train every head."""
    examples = [example for path in files for example in load_examples(path)]
    x = encoder.embed([example.text for example in examples])
    trained = []
    for label, category in HEAD_CATEGORIES.items():
        y = torch.tensor([category in example.categories for example in examples]).float()
        trained.append(train_head(label, x, y))
    return trained, examples


def main(argv: Sequence[str] | None = None) -> int:
    """Train and write the heads file; print the out-of-fold figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_DATA))
    parser.add_argument("--out", type=Path, default=HEADS_FILE)
    parser.add_argument("--model-path", help="a local copy of the encoder folder")
    args = parser.parse_args(argv)
    encoder = SentenceEncoder.load(Concern(model_path=args.model_path), ENCODER)
    trained, examples = train(args.data, encoder)
    document = heads_document(trained, examples, args.data)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{len(examples)} labelled comments -> {args.out}")
    for head in trained:
        point = head.operating
        print(
            f"{head.label:22} positives {head.positives:4}  l2 {head.l2:g}  threshold "
            f"{point.threshold:.2f}  out-of-fold precision {point.precision:.3f} "
            f"recall {point.recall:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
