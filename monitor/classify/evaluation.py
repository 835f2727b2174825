"""Precision and recall per category on a labelled set (JSON lines: text, categories)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.classify.assessment import Assessment
from monitor.constants import CONTENT_CATEGORIES, Category


@dataclass(frozen=True)
class Example:
    """One labelled comment."""

    id: str
    text: str
    categories: frozenset[Category]
    kind: str = "reply"
    split: str = "dev"


@dataclass
class Tally:
    """Counts for one category."""

    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def support(self) -> int:
        """How many examples carry the category."""
        return self.true_pos + self.false_neg

    @property
    def precision(self) -> float:
        """Share of flags that were right (1.0 when nothing was flagged)."""
        flagged = self.true_pos + self.false_pos
        return self.true_pos / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled examples that were flagged (1.0 when none carry it)."""
        return self.true_pos / self.support if self.support else 1.0


def load_examples(path: str | Path, *, split: str | None = None) -> list[Example]:
    """Read a JSON-lines labelled set; ``split`` keeps only that split."""
    examples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            example = Example(
                id=str(data["id"]),
                text=str(data["text"]),
                categories=frozenset(Category(c) for c in data["categories"]),
                kind=str(data.get("kind", "reply")),
                split=str(data.get("split", "dev")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: bad labelled example: {exc}") from exc
        if split is None or example.split == split:
            examples.append(example)
    return examples


def evaluate(
    examples: Sequence[Example],
    assess: Callable[[Sequence[str]], Sequence[Assessment]],
    categories: Iterable[Category] = sorted(CONTENT_CATEGORIES),
) -> dict[Category, Tally]:
    """A tally per category of ``assess`` against the labels."""
    wanted = list(categories)
    tallies = {c: Tally() for c in wanted}
    assessments = assess([e.text for e in examples])
    for example, assessment in zip(examples, assessments, strict=True):
        for category in wanted:
            tally = tallies[category]
            expected = category in example.categories
            got = category in assessment.categories
            if expected and got:
                tally.true_pos += 1
            elif expected:
                tally.false_neg += 1
                tally.misses.append(example.id)
            elif got:
                tally.false_pos += 1
                tally.false_alarms.append(example.id)
    return tallies


def format_table(tallies: dict[Category, Tally]) -> str:
    """A plain-text table of the tallies."""
    lines = [f"{'category':<18} {'support':>7} {'precision':>9} {'recall':>7}  TP  FP  FN"]
    for category, t in tallies.items():
        lines.append(
            f"{category.value:<18} {t.support:>7} {t.precision:>9.3f} {t.recall:>7.3f}"
            f" {t.true_pos:>3} {t.false_pos:>3} {t.false_neg:>3}"
        )
    return "\n".join(lines)
