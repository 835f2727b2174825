"""The rule-based figures on the labelled set: regressions fail here.

bench/evaluate_rules.py prints the same table; the splits record how the set was written
(dev first, then holdout1 and holdout2 written blind and scored once before the rules were
widened; the README records those first, blind figures).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from monitor.classify.engine import RuleEngine, combine
from monitor.classify.evaluation import Tally, evaluate, load_examples
from monitor.classify.personal_data import ProtectedNames
from monitor.config_models import School
from monitor.constants import CONTENT_CATEGORIES, Category
from tests.classify.classify_support import LABELLED, PROTECTED

SCHOOL = School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield"])
# (precision, recall) the rules alone must reach; abusive and threat lean on the model too.
FLOORS: dict[Category, tuple[float, float]] = {
    Category.SAFEGUARDING: (0.95, 0.95),
    Category.THREAT: (0.85, 0.95),
    Category.ABUSIVE: (0.90, 0.80),
    Category.PERSONAL_DATA: (0.95, 0.95),
    Category.MEDIA_ENQUIRY: (0.95, 0.95),
    Category.NEEDS_RESPONSE: (0.88, 0.95),
    Category.NEGATIVE_MENTION: (0.92, 0.92),
}


@pytest.fixture(scope="module")
def tallies() -> dict[Category, Tally]:
    engine = RuleEngine.for_school(SCHOOL, ProtectedNames(PROTECTED))
    examples = load_examples(LABELLED)
    return evaluate(examples, lambda texts: [combine(engine.run(t), None, {}, None) for t in texts])


def test_the_set_is_big_and_varied_enough() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 200
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({row["text"] for row in rows}) == len(rows)
    counts = Counter(c for row in rows for c in row["categories"])
    assert set(counts) == {c.value for c in CONTENT_CATEGORIES}
    assert sum(1 for row in rows if not row["categories"]) >= 50  # plenty of ordinary comments


@pytest.mark.parametrize("category", sorted(FLOORS))
def test_rule_figures_do_not_regress(tallies: dict[Category, Tally], category: Category) -> None:
    tally = tallies[category]
    precision_floor, recall_floor = FLOORS[category]
    assert tally.recall >= recall_floor, f"missed: {tally.misses}"
    assert tally.precision >= precision_floor, f"false alarms: {tally.false_alarms}"


def test_safeguarding_recall_is_at_least_95_percent(tallies: dict[Category, Tally]) -> None:
    assert tallies[Category.SAFEGUARDING].recall >= 0.95
