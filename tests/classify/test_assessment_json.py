"""Assessments go to storage as plain dicts and come back the same."""

from __future__ import annotations

import json

import pytest

from monitor.classify.assessment import Assessment, AssessmentFormatError, RuleMatch
from monitor.constants import Category, Severity

SAMPLE = Assessment(
    scores={"toxicity": 0.91, "threat": 0.02},
    categories=frozenset({Category.ABUSIVE, Category.PERSONAL_DATA}),
    severity=Severity.MEDIUM,
    matches=(
        RuleMatch("PD-PHONE", Category.PERSONAL_DATA, 8, 20, "07700 900123", "a UK phone number"),
        RuleMatch("MODEL-TOXICITY", Category.ABUSIVE, 0, 0, "", "toxic: toxicity 0.91 >= 0.80"),
    ),
    model="detoxify/original",
)


def test_round_trip_through_json_text() -> None:
    data = json.loads(json.dumps(SAMPLE.to_json()))
    assert Assessment.from_json(data) == SAMPLE
    assert data["categories"] == ["abusive", "personal_data"]
    assert data["version"] == 1


def test_rules_only_assessments_stay_unscored() -> None:
    unscored = Assessment({}, frozenset(), Severity.NONE, (), None)
    back = Assessment.from_json(unscored.to_json())
    assert back.unscored and back.model is None


def test_helpers() -> None:
    assert SAMPLE.has(Category.ABUSIVE) and not SAMPLE.has(Category.THREAT)
    assert SAMPLE.at_least(Severity.LOW) and not SAMPLE.at_least(Severity.HIGH)
    assert SAMPLE.rule_ids() == ("PD-PHONE", "MODEL-TOXICITY")
    assert SAMPLE.rule_ids(Category.ABUSIVE) == ("MODEL-TOXICITY",)
    assert hash(SAMPLE) == hash(Assessment.from_json(SAMPLE.to_json()))


@pytest.mark.parametrize(
    "change",
    [
        {"severity": "apocalyptic"},
        {"categories": ["monitoring_gap"]},  # an operational category, not content
        {"categories": ["nonsense"]},
        {"model": 3},
        {"version": 99},
        {"scores": {"toxicity": "high"}},
        {
            "matches": [
                {
                    "rule_id": "X-Y",
                    "category": "abusive",
                    "start": 5,
                    "end": 2,
                    "matched": "",
                    "reason": "r",
                }
            ]
        },
        {"matches": [{"rule_id": "X-Y"}]},
    ],
)
def test_bad_stored_data_is_refused_clearly(change: dict[str, object]) -> None:
    data = {**SAMPLE.to_json(), **change}
    with pytest.raises(AssessmentFormatError):
        Assessment.from_json(data)


def test_missing_keys_are_refused() -> None:
    data = SAMPLE.to_json()
    del data["scores"]
    with pytest.raises(AssessmentFormatError):
        Assessment.from_json(data)
