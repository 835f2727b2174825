"""Rules plus the concern model on comments neither was ever tuned or trained on.

tests/data/blind_comments.jsonl (blind1) and blind2_comments.jsonl (blind2: third-party
reports, veiled phrasings, adults contacting children, allegations about staff, threats to
people and buildings, complaints as statements, sarcasm) were written without sight of the
lexicons or of the concern model's training comments, and are never used to tune either;
bench/blind_table.py prints the full tables (monitor/classify/README.md). The floors sit a
little under the figures measured with the shipped heads, so that a change which loses
disclosures or threats fails here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.classify.assessment import Assessment
from monitor.classify.concern import ConcernModel
from monitor.classify.engine import RuleEngine, combine
from monitor.classify.evaluation import Tally, evaluate, load_examples
from monitor.classify.personal_data import ProtectedNames
from monitor.config_models import Classifier, Concern, School
from monitor.constants import Category
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
PARTS = {
    "blind1": (DATA / "blind_comments.jsonl", DATA / "blind_protected_pupils.txt"),
    "blind2": (DATA / "blind2_comments.jsonl", DATA / "blind2_protected_pupils.txt"),
}
SCHOOL = School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield"])
# part -> category -> (precision, recall) that rules + the concern model must reach
# (precision, recall, recall gained over the rules alone), just under the measured figures
FLOORS: dict[str, dict[Category, tuple[float, float, float]]] = {
    "blind1": {
        Category.SAFEGUARDING: (0.78, 0.84, 0.4),
        Category.THREAT: (0.80, 0.70, 0.4),
        Category.NEGATIVE_MENTION: (0.80, 0.60, 0.3),
    },
    "blind2": {
        Category.SAFEGUARDING: (0.80, 0.80, 0.4),
        Category.THREAT: (0.74, 0.50, 0.4),
        Category.NEGATIVE_MENTION: (0.70, 0.44, 0.3),
    },
}
THEMES = {
    "third_party",
    "veiled",
    "adult_contact",
    "staff_allegation",
    "threat_people",
    "threat_building",
    "complaint_statement",
    "sarcasm",
    "praise_rude",
}


@pytest.fixture(scope="module")
def concern() -> ConcernModel:
    return ConcernModel.load(Concern())


@pytest.fixture(scope="module", params=sorted(PARTS))
def tallies(
    request: pytest.FixtureRequest, concern: ConcernModel
) -> tuple[str, dict[str, dict[Category, Tally]]]:
    part: str = request.param
    comments, names = PARTS[part]
    engine = RuleEngine.for_school(SCHOOL, ProtectedNames(names))
    examples = load_examples(comments)
    thresholds = Classifier().thresholds

    def with_model(texts: Sequence[str]) -> list[Assessment]:
        scores = concern.score(list(texts))
        return [
            combine(engine.run(t), s, thresholds, concern.name)
            for t, s in zip(texts, scores, strict=True)
        ]

    return part, {
        "rules": evaluate(
            examples, lambda texts: [combine(engine.run(t), None, {}, None) for t in texts]
        ),
        "model": evaluate(examples, with_model),
    }


def _training_texts() -> set[str]:
    return {
        e.text.casefold()
        for name in ("labelled_comments.jsonl", "training_comments.jsonl")
        for e in load_examples(DATA / name)
    }


@pytest.mark.parametrize(
    ("part", "size", "safeguarding"), [("blind1", 300, 100), ("blind2", 200, 80)]
)
def test_the_blind_parts_are_big_and_unseen(part: str, size: int, safeguarding: int) -> None:
    examples = load_examples(PARTS[part][0])
    assert len(examples) >= size
    assert sum(Category.SAFEGUARDING in e.categories for e in examples) >= safeguarding
    assert not [e.id for e in examples if e.text.casefold() in _training_texts()]


def test_the_second_part_covers_the_kinds_schools_receive() -> None:
    path: Path = PARTS["blind2"][0]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    themes = {row["theme"] for row in rows}
    assert themes >= THEMES
    assert sum(Category.THREAT.value in row["categories"] for row in rows) >= 30
    first = {e.text.casefold() for e in load_examples(PARTS["blind1"][0])}
    assert not [row["id"] for row in rows if row["text"].casefold() in first]


def test_the_concern_model_finds_most_of_what_the_rules_miss(
    tallies: tuple[str, dict[str, dict[Category, Tally]]],
) -> None:
    part, runs = tallies
    for category, (precision, recall, gain) in FLOORS[part].items():
        rules, model = runs["rules"][category], runs["model"][category]
        assert model.recall >= recall, f"{part} {category}: missed {model.misses}"
        assert model.precision >= precision, f"{part} {category}: false alarms {model.false_alarms}"
        assert model.recall >= rules.recall + gain  # the model's reason to exist
        # nothing the rules catch is lost when the model is added
        assert set(model.misses) <= set(rules.misses)
