"""Precision and recall of the rule-based classifier, per category, on the labelled set.

    .venv/bin/python bench/evaluate_rules.py [--split dev|holdout1|...] [--errors]
    .venv/bin/python bench/evaluate_rules.py --blind [--concern] [--errors]

``--blind`` scores tests/data/blind_comments.jsonl, comments written without sight of the
rules or the concern model's training data, never used to tune either; ``--concern`` adds
the concern model's scores (monitor/classify/concern.py) at the configured thresholds, as
the monitor runs when the models are loaded (Detoxify aside). bench/blind_table.py prints
both blind parts, rules alone and with the concern model, as the README's tables.

Abusive and threat are mostly the model's job: the figures here are the rules alone (what
the monitor does while the model is down). tests/classify/test_labelled_set.py holds the
floors these figures must not fall below.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.classify.assessment import Assessment  # noqa: E402
from monitor.classify.concern import ConcernModel  # noqa: E402
from monitor.classify.engine import RuleEngine, combine  # noqa: E402
from monitor.classify.evaluation import Tally, evaluate, format_table, load_examples  # noqa: E402
from monitor.classify.personal_data import ProtectedNames  # noqa: E402
from monitor.config_models import Classifier, Concern, School  # noqa: E402
from monitor.constants import Category  # noqa: E402

DATA = REPO / "tests" / "data" / "labelled_comments.jsonl"
NAMES = REPO / "tests" / "data" / "protected_pupils.txt"
BLIND = REPO / "tests" / "data" / "blind_comments.jsonl"
BLIND_NAMES = REPO / "tests" / "data" / "blind_protected_pupils.txt"
# The school the labelled comments are about (public mentions name it).
SCHOOL = School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield"])


def rules_only(names: Path = NAMES) -> RuleEngine:
    """The rule engine the labelled set is scored with."""
    return RuleEngine.for_school(SCHOOL, ProtectedNames(names))


def assess_with(
    engine: RuleEngine, concern: ConcernModel | None = None
) -> Callable[[Sequence[str]], list[Assessment]]:
    """Assessments of texts: the rules, plus the concern model's scores when given.

    The concern labels are read at their heads' own thresholds (the config defaults for the
    shipped heads), so an older heads file is scored as it shipped.
    """
    thresholds = dict(Classifier().thresholds)
    if concern is not None:
        thresholds.update({head.label: head.threshold for head in concern.heads.heads})

    def assess(texts: Sequence[str]) -> list[Assessment]:
        if concern is None:
            return [combine(engine.run(t), None, {}, None) for t in texts]
        scores = concern.score(list(texts))
        return [
            combine(engine.run(t), s, thresholds, concern.name)
            for t, s in zip(texts, scores, strict=True)
        ]

    return assess


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (and the errors when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--names", type=Path, default=None)
    parser.add_argument("--blind", action="store_true", help="the blind set (never tuned on)")
    parser.add_argument("--concern", action="store_true", help="add the concern model")
    parser.add_argument("--split", default=None, help="dev, holdout1 or holdout2 (default: all)")
    parser.add_argument("--errors", action="store_true", help="list misses and false alarms")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the test fixture's file mode is not a concern here
    data = args.data or (BLIND if args.blind else DATA)
    names = args.names or (BLIND_NAMES if args.blind else NAMES)
    examples = load_examples(data, split=args.split)
    engine = rules_only(names)
    concern = ConcernModel.load(Concern()) if args.concern else None
    assess = assess_with(engine, concern)
    tallies: dict[Category, Tally] = evaluate(examples, assess)
    how = f"rules + {concern.name}" if concern else "rules only"
    print(f"{len(examples)} comments of {data.name} ({args.split or 'all splits'}), {how}\n")
    print(format_table(tallies))
    if args.errors:
        by_id = {e.id: e for e in examples}
        for category, tally in tallies.items():
            for kind, ids in (("missed", tally.misses), ("false alarm", tally.false_alarms)):
                for example_id in ids:
                    text = by_id[example_id].text
                    fired = [
                        f"{m.rule_id}:{m.matched!r}"
                        for m in assess([text])[0].matches
                        if m.category == category
                    ]
                    print(f"{category.value:<17} {kind:<11} {example_id} {text!r} {fired}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
