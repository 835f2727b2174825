"""The blind table: precision and recall per category on both blind parts, rules alone and
rules + the concern model, as Markdown for monitor/classify/README.md.

    .venv/bin/python bench/blind_table.py [--heads FILE] [--themes]

The blind parts are comments written without sight of the lexicons or of the concern
model's training comments and never trained or tuned on:

- ``blind1``: tests/data/blind_comments.jsonl (358 comments; pupils' own disclosures mostly);
- ``blind2``: tests/data/blind2_comments.jsonl (224 comments; concerns reported by a friend,
  parent or neighbour, veiled phrasings, adults contacting or waiting for children,
  allegations about staff, threats to people and to the building, complaints written as
  statements, sarcasm, praise that looks rude). Each comment names its ``theme``;
  ``--themes`` adds recall per theme.

``--heads`` scores with another heads file instead of the shipped one (each label at that
file's own thresholds), e.g. the heads before the threat head
(``git show 45940b2:monitor/classify/concern_heads.json > before.json``), which reproduces
the "before" columns. Detoxify is not loaded (its real weights cannot be
downloaded here): abusive and threat rely on it in production, so their figures here are
the rules' and the concern model's alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.evaluate_rules import assess_with, rules_only  # noqa: E402
from monitor.classify.assessment import Assessment  # noqa: E402
from monitor.classify.concern import ConcernModel, parse_heads  # noqa: E402
from monitor.classify.evaluation import Tally, evaluate, load_examples  # noqa: E402
from monitor.config_models import Concern  # noqa: E402
from monitor.constants import CONTENT_CATEGORIES, Category  # noqa: E402

DATA = REPO / "tests" / "data"


@dataclass(frozen=True)
class Part:
    """One blind part: its comments and its protected pupils."""

    name: str
    comments: Path
    names: Path


PARTS = (
    Part("blind1", DATA / "blind_comments.jsonl", DATA / "blind_protected_pupils.txt"),
    Part("blind2", DATA / "blind2_comments.jsonl", DATA / "blind2_protected_pupils.txt"),
)


def cell(tally: Tally) -> str:
    """``precision (tp/flagged) / recall (tp/support)``."""
    flagged = tally.true_pos + tally.false_pos
    return (
        f"{tally.precision:.2f} ({tally.true_pos}/{flagged}) / "
        f"{tally.recall:.2f} ({tally.true_pos}/{tally.support})"
    )


def themes(path: Path) -> dict[str, str]:
    """Each comment's theme (the ``theme`` field; ``-`` when absent)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {
        str(row["id"]): str(row.get("theme", "-"))
        for row in (json.loads(line) for line in lines if line.strip())
    }


def theme_table(
    part: Part,
    runs: dict[str, dict[Category, Tally]],
    categories: Sequence[Category] = (Category.SAFEGUARDING, Category.THREAT),
) -> list[str]:
    """Labels of ``categories`` found, and false alarms of any of them, per theme and mode."""
    theme_of = themes(part.comments)
    examples = load_examples(part.comments)
    which = " and ".join(c.value for c in categories)
    lines = [
        f"| {part.name} theme ({which}) | comments | " + " | ".join(runs) + " |",
        "| --- | --- |" + " --- |" * len(runs),
    ]
    for theme in sorted(set(theme_of.values())):
        members = [e for e in examples if theme_of[e.id] == theme]
        cells = []
        for tallies in runs.values():
            wanted = caught = false_alarms = 0
            for category in categories:
                tally = tallies[category]
                for example in members:
                    if category in example.categories:
                        wanted += 1
                        caught += example.id not in tally.misses
                    else:
                        false_alarms += example.id in tally.false_alarms
            found = f"{caught}/{wanted} found" if wanted else "nothing to find"
            cells.append(f"{found}, {false_alarms} false alarms")
        lines.append(f"| {theme} | {len(members)} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=Path, help="a concern heads file (default: the shipped)")
    parser.add_argument("--themes", action="store_true", help="add recall per theme")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    heads = parse_heads(json.loads(args.heads.read_text(encoding="utf-8"))) if args.heads else None
    concern = ConcernModel.load(Concern(), heads=heads)
    labels = ", ".join(concern.labels)
    print(f"concern model {concern.name} ({labels}); Detoxify not loaded\n")
    categories = sorted(CONTENT_CATEGORIES)
    for part in PARTS:
        examples = load_examples(part.comments)
        engine = rules_only(part.names)
        modes: dict[str, Callable[[Sequence[str]], list[Assessment]]] = {
            "rules only": assess_with(engine),
            "rules + concern model": assess_with(engine, concern),
        }
        runs = {mode: evaluate(examples, assess, categories) for mode, assess in modes.items()}
        print(f"{part.name}: {len(examples)} comments, precision / recall\n")
        print("| category | support | " + " | ".join(runs) + " |")
        print("| --- | --- |" + " --- |" * len(runs))
        for category in categories:
            support = next(iter(runs.values()))[category].support
            cells = " | ".join(cell(tallies[category]) for tallies in runs.values())
            print(f"| {category.value} | {support} | {cells} |")
        print()
        if args.themes:
            print("\n".join(theme_table(part, runs)) + "\n")
            negative = theme_table(part, runs, (Category.NEGATIVE_MENTION,))
            print("\n".join(negative) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
