"""R9: violence the rules file as safeguarding raises the threat too when it threatens someone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.calendar import WorkingCalendar
from monitor.constants import Category, ItemKind, Severity
from monitor.rules.engine import ItemFacts, ItemPolicy, decide_for_item
from monitor.rules.threats import raised_categories, threatens

C = Category
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
POLICY = ItemPolicy(
    calendar=WorkingCalendar(), within=timedelta(hours=24), reminder_before=timedelta(hours=4)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm bringing a knife to school tomorrow", True),
        ("I'll bring my brothers machete in", True),
        ("he said he'd stab him if he told anyone", True),
        ("they will shoot everyone", True),
        ("there will be knives at the gates on friday", True),
        # concerns for a child, not threats against anyone
        ("he carries a knife in his bag", False),
        ("She has a knife in her bag, I'm scared for her", False),
        ("my son got stabbed near the school", False),
        ("knife crime awareness assembly", False),
    ],
)
def test_what_threatens_people_or_the_school(text: str, expected: bool) -> None:
    assert threatens(text) is expected


@pytest.mark.parametrize(
    ("categories", "rules", "text", "expected"),
    [
        (
            {C.SAFEGUARDING},
            {"SG-RISK-VIOLENCE"},
            "I'm bringing a knife to school",
            {C.SAFEGUARDING, C.THREAT},
        ),
        ({C.SAFEGUARDING}, {"SG-RISK-VIOLENCE"}, "he carries a knife", {C.SAFEGUARDING}),
        # another safeguarding rule (self-harm) never becomes a threat
        ({C.SAFEGUARDING}, {"SG-SELF-HARM"}, "I'm bringing a knife to school", {C.SAFEGUARDING}),
        ({C.ABUSIVE}, {"SG-RISK-VIOLENCE"}, "I'm bringing a knife to school", {C.ABUSIVE}),
    ],
)
def test_raised_categories(
    categories: set[Category], rules: set[str], text: str, expected: set[Category]
) -> None:
    got = raised_categories(frozenset(categories), rule_ids=rules, text=text)
    assert got == frozenset(expected)


def test_a_threatening_safeguarding_case_gets_the_police_step() -> None:
    facts = ItemFacts(
        item_id=7,
        account_key="oak-bsky",
        kind=ItemKind.REPLY,
        stream="replies",
        is_own=False,
        posted_at=MONDAY,
        seen_at=MONDAY,
        categories=frozenset({C.SAFEGUARDING}),
        severity=Severity.HIGH,
        rule_ids=frozenset({"SG-RISK-VIOLENCE"}),
        text="I'm bringing a knife to school tomorrow",
    )
    decision = decide_for_item(facts, POLICY)
    assert decision is not None
    assert decision.category is C.SAFEGUARDING and decision.restricted
    assert C.THREAT in decision.categories and decision.police_step
