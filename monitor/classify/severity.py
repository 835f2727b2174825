"""How serious an assessment is: tables from categories, rules and model scores to severity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.constants import SEVERITY_ORDER, Category, Severity

# The severity a category carries unless the rule that raised it says otherwise.
CATEGORY_SEVERITY: dict[Category, Severity] = {
    Category.SAFEGUARDING: Severity.HIGH,  # R6: the DSL hears at once
    Category.THREAT: Severity.HIGH,  # R9: SLT and DSL at once
    Category.ABUSIVE: Severity.MEDIUM,  # R5: hide, record
    Category.PERSONAL_DATA: Severity.MEDIUM,  # R12
    Category.MEDIA_ENQUIRY: Severity.MEDIUM,  # R11: to the principal
    Category.NEEDS_RESPONSE: Severity.LOW,  # R2: answer within the target
    Category.NEGATIVE_MENTION: Severity.LOW,  # R10
}


@dataclass(frozen=True)
class NamedSubject:
    """The rule a score rule becomes when the text also names its subject.

    ``macro`` is a lexicon macro (``lexicons/macros.yaml``, with the school's own names), so
    the model rule asks exactly what the lexicon rules ask of the text.
    """

    rule_id: str
    macro: str
    reason: str


@dataclass(frozen=True)
class ScoreRule:
    """A model label that raises a category when its score reaches the configured threshold."""

    rule_id: str
    label: str
    category: Category
    severity: Severity
    reason: str
    named: NamedSubject | None = None

    def for_text(self, named_macros: frozenset[str]) -> tuple[str, str]:
        """The rule id and reason for a text that names the macros ``named_macros``."""
        if self.named is not None and self.named.macro in named_macros:
            return self.named.rule_id, self.named.reason
        return self.rule_id, self.reason


# Labels not listed here (e.g. the identity labels of the unbiased model) never raise anything.
SCORE_RULES: tuple[ScoreRule, ...] = (
    ScoreRule("MODEL-TOXICITY", "toxicity", Category.ABUSIVE, Severity.MEDIUM, "toxic"),
    ScoreRule(
        "MODEL-SEVERE-TOXICITY",
        "severe_toxicity",
        Category.ABUSIVE,
        Severity.HIGH,
        "severely toxic",
    ),
    ScoreRule("MODEL-OBSCENE", "obscene", Category.ABUSIVE, Severity.MEDIUM, "obscene"),
    ScoreRule("MODEL-INSULT", "insult", Category.ABUSIVE, Severity.MEDIUM, "insulting"),
    ScoreRule(
        "MODEL-IDENTITY-ATTACK",
        "identity_attack",
        Category.ABUSIVE,
        Severity.HIGH,
        "attacks an identity",
    ),
    ScoreRule(
        "MODEL-SEXUAL-EXPLICIT",
        "sexual_explicit",
        Category.ABUSIVE,
        Severity.MEDIUM,
        "sexually explicit",
    ),
    ScoreRule("MODEL-THREAT", "threat", Category.THREAT, Severity.HIGH, "threatening"),
    # the concern model (monitor/classify/concern.py): meaning rather than listed phrases
    ScoreRule(
        "MODEL-SAFEGUARDING",
        "concern_safeguarding",
        Category.SAFEGUARDING,
        Severity.HIGH,
        "reads like a safeguarding concern",
    ),
    ScoreRule(
        "MODEL-CONCERN-THREAT",
        "concern_threat",
        Category.THREAT,
        Severity.HIGH,
        "reads like a threat",
    ),
    # R10: like NEG-GENERAL / NEG-ABOUT-SCHOOL, the score alone names no subject; routing
    # counts a public mention only when the school or its staff are named in it as well.
    ScoreRule(
        "MODEL-NEGATIVE-MENTION",
        "concern_negative",
        Category.NEGATIVE_MENTION,
        Severity.LOW,
        "reads like a complaint (no subject named)",
        named=NamedSubject(
            "MODEL-NEGATIVE-ABOUT-SCHOOL",
            "school_or_staff",
            "reads like a complaint about the school or its staff",
        ),
    ),
)


def subject_macros() -> frozenset[str]:
    """The lexicon macros some score rule asks about (what the rule engine must look for)."""
    return frozenset(rule.named.macro for rule in SCORE_RULES if rule.named is not None)


def worst(severities: Iterable[Severity]) -> Severity:
    """The most serious of ``severities`` (``NONE`` for none)."""
    return max(severities, key=SEVERITY_ORDER.__getitem__, default=Severity.NONE)


def score_hits(
    scores: Mapping[str, float], thresholds: Mapping[str, float | None]
) -> list[tuple[ScoreRule, float, float]]:
    """Each score rule whose label reached its threshold, with the score and the threshold."""
    hits = []
    for rule in SCORE_RULES:
        score = scores.get(rule.label)
        threshold = thresholds.get(rule.label)
        if score is not None and threshold is not None and score >= threshold:
            hits.append((rule, score, threshold))
    return hits
