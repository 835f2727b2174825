"""int8 or fp32: the accuracy guard that decides, per model, on the first load.

int8 matrix products (PyTorch dynamic quantisation of the linear layers) are cheaper than
fp32 but move the scores a little, and how much depends on the weights. So on the first
load of a model the monitor scores a calibration set shipped with the package (the
project's labelled comments, ``calibration_comments.jsonl``) both ways and uses int8 only
if every category decision (score at or above its threshold) agrees and the largest score
difference is within ``classifier.precision_tolerance``; otherwise it stays on fp32 and
logs why. The figures are kept in a small JSON file (``$MONITOR_DATA_DIR/
classifier-precision.json``) keyed by the model's fingerprint (the SHA-256 of its weights),
the thresholds, the tolerance and the calibration set, so a swapped model runs the guard
again, and ``monitor status`` shows them.

``classifier.precision``: ``auto`` (the guard decides), ``fp32`` (no guard, no int8) or
``int8`` (int8 whatever the guard finds; the figures are still measured and shown).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "int8"]
CALIBRATION_FILE = Path(__file__).with_name("calibration_comments.jsonl")
STORE_NAME = "classifier-precision.json"
Scorer = Callable[[Sequence[str]], list[dict[str, float]]]


@dataclass(frozen=True)
class GuardFigures:
    """What the guard measured on one model, and the precision it chose."""

    model: str
    fingerprint: str  # SHA-256 of the model's weights (and head), shortened
    requested: str  # classifier.precision
    mode: str  # "fp32" or "int8": what the model runs
    max_diff: float  # the largest |int8 - fp32| score over every comment and label
    worst_label: str
    disagreements: int  # category decisions that differ
    decisions: int  # comment x thresholded label pairs compared
    comments: int
    tolerance: float
    reason: str
    checked_at: str  # ISO 8601, UTC
    fp32_seconds: float
    int8_seconds: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuardFigures:
        """Read one stored entry (raises ``TypeError``/``KeyError`` when malformed)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def summary(self) -> str:
        """One line for ``monitor status``."""
        speed = (
            f"; int8 {self.fp32_seconds / self.int8_seconds:.2f}x as fast"
            if self.int8_seconds > 0
            else ""
        )
        return (
            f"{self.model}: {self.mode} (precision {self.requested}); max score difference "
            f"{self.max_diff:.4f} ({self.worst_label}), {self.disagreements} of "
            f"{self.decisions} decisions differ on {self.comments} comments, tolerance "
            f"{self.tolerance}{speed}; checked {self.checked_at[:16].replace('T', ' ')} UTC, "
            f"model {self.fingerprint[:12]}"
        )


@dataclass(frozen=True)
class Comparison:
    """fp32 and int8 scores of the same comments, compared."""

    max_diff: float
    worst_label: str
    disagreements: int
    decisions: int
    first_disagreement: str | None  # e.g. "toxicity on comment 17: 0.79 vs 0.81"


def compare(
    fp32: Sequence[Mapping[str, float]],
    int8: Sequence[Mapping[str, float]],
    thresholds: Mapping[str, float | None],
) -> Comparison:
    """The largest score difference over every label, and the category decisions that differ.

    A decision is ``score >= threshold`` for each label with a threshold (labels set to
    None, and labels that raise no category, are compared by score only).
    """
    if len(fp32) != len(int8):
        raise ValueError("fp32 and int8 must score the same comments")
    max_diff, worst = 0.0, "-"
    disagreements = decisions = 0
    first: str | None = None
    for index, (a, b) in enumerate(zip(fp32, int8, strict=True)):
        for label, value in a.items():
            other = b.get(label, math.nan)
            diff = abs(value - other)
            if not diff <= max_diff:  # NaN counts as the worst
                max_diff, worst = (diff if math.isfinite(diff) else math.inf), label
            threshold = thresholds.get(label)
            if threshold is None:
                continue
            decisions += 1
            if (value >= threshold) != (other >= threshold):
                disagreements += 1
                if first is None:
                    first = f"{label} on comment {index + 1}: {value:.3f} vs {other:.3f}"
    return Comparison(max_diff, worst, disagreements, decisions, first)


def choose(requested: Precision, found: Comparison, tolerance: float) -> tuple[str, str]:
    """The precision to run (``fp32`` or ``int8``) and why, from what the guard found."""
    agrees = found.disagreements == 0 and found.max_diff <= tolerance
    if found.disagreements:
        verdict = (
            f"{found.disagreements} of {found.decisions} category decisions differ "
            f"(first: {found.first_disagreement})"
        )
    elif found.max_diff > tolerance:
        verdict = (
            f"the largest score difference {found.max_diff:.4f} ({found.worst_label}) is above "
            f"the tolerance {tolerance}"
        )
    else:
        verdict = (
            f"all {found.decisions} category decisions agree and the largest score difference "
            f"{found.max_diff:.4f} ({found.worst_label}) is within the tolerance {tolerance}"
        )
    if requested == "int8":
        return "int8", f"int8 forced by classifier.precision; {verdict}"
    if agrees:
        return "int8", f"int8: {verdict}"
    return "fp32", f"staying on fp32: {verdict}"


@cache
def calibration_texts() -> tuple[str, ...]:
    """The calibration comments shipped with the package."""
    lines = CALIBRATION_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(str(json.loads(line)["text"]) for line in lines if line.strip())


def calibration_digest() -> str:
    """SHA-256 of the calibration set (a new set runs the guard again)."""
    return hashlib.sha256(CALIBRATION_FILE.read_bytes()).hexdigest()


def guard_key(fingerprint: str, thresholds: Mapping[str, float | None], tolerance: float) -> str:
    """The cache key: the model's weights, the decisions compared and the calibration set."""
    import torch

    document = json.dumps(
        {
            "model": fingerprint,
            "thresholds": sorted((k, v) for k, v in thresholds.items() if v is not None),
            "tolerance": tolerance,
            "calibration": calibration_digest(),
            "torch": torch.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(document.encode()).hexdigest()


def default_store_path() -> Path:
    """``$MONITOR_DATA_DIR/classifier-precision.json`` (``data/`` by default)."""
    return Path(os.environ.get("MONITOR_DATA_DIR", "data")) / STORE_NAME


class PrecisionStore:
    """The guard's figures by key: in memory for the process, and in a JSON file.

    The file is written only when its folder exists (the service's data folder), so
    ``monitor classify`` run anywhere leaves no stray folders; the guard then runs once per
    process.
    """

    _memory: dict[tuple[str, str], GuardFigures] = {}  # noqa: RUF012  # per process, by file
    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_store_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("classifier precision figures in %s unreadable (%s)", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> GuardFigures | None:
        """The figures stored under ``key``, if any."""
        with self._lock:
            if (str(self.path), key) in self._memory:
                return self._memory[str(self.path), key]
            entry = self._read().get(key)
        try:
            return GuardFigures.from_json(entry) if isinstance(entry, dict) else None
        except (KeyError, TypeError):
            return None

    def put(self, key: str, figures: GuardFigures) -> None:
        """Keep ``figures`` under ``key`` (in the file too when its folder exists)."""
        with self._lock:
            self._memory[str(self.path), key] = figures
            if not self.path.parent.is_dir():
                return
            data = self._read()
            data[key] = figures.to_json()
            temporary = self.path.with_suffix(".tmp")
            try:
                temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
                temporary.replace(self.path)
            except OSError as exc:
                log.warning(
                    "cannot write the classifier precision figures to %s: %s", self.path, exc
                )

    def latest(self) -> list[GuardFigures]:
        """The newest figures of each model in the file, newest first."""
        newest: dict[str, GuardFigures] = {}
        with self._lock:
            entries = list(self._read().values())
        for entry in entries:
            try:
                figures = GuardFigures.from_json(entry)
            except (KeyError, TypeError):
                continue
            if figures.model not in newest or figures.checked_at > newest[figures.model].checked_at:
                newest[figures.model] = figures
        return sorted(newest.values(), key=lambda f: f.checked_at, reverse=True)


def run_guard(
    *,
    model: str,
    fingerprint: str,
    score_fp32: Scorer,
    score_int8: Scorer,
    thresholds: Mapping[str, float | None],
    tolerance: float,
    requested: Precision,
    store: PrecisionStore,
    now: datetime,
    texts: Sequence[str] | None = None,
) -> GuardFigures:
    """The stored figures for this model, or score the calibration set both ways and store."""
    key = guard_key(fingerprint, thresholds, tolerance)
    known = store.get(key)
    if known is not None:
        mode, reason = known.mode, known.reason
        if known.requested != requested:  # same measurement, a different setting
            found = Comparison(
                known.max_diff, known.worst_label, known.disagreements, known.decisions, None
            )
            mode, reason = choose(requested, found, tolerance)
        return GuardFigures(
            **{**known.to_json(), "requested": requested, "mode": mode, "reason": reason}
        )
    texts = list(texts if texts is not None else calibration_texts())
    started = time.perf_counter()
    fp32 = score_fp32(texts)
    middle = time.perf_counter()
    int8 = score_int8(texts)
    ended = time.perf_counter()
    found = compare(fp32, int8, thresholds)
    mode, reason = choose(requested, found, tolerance)
    figures = GuardFigures(
        model=model,
        fingerprint=fingerprint,
        requested=requested,
        mode=mode,
        max_diff=found.max_diff,
        worst_label=found.worst_label,
        disagreements=found.disagreements,
        decisions=found.decisions,
        comments=len(texts),
        tolerance=tolerance,
        reason=reason,
        checked_at=now.isoformat(),
        fp32_seconds=round(middle - started, 3),
        int8_seconds=round(ended - middle, 3),
    )
    store.put(key, figures)
    return figures
