"""What the classifier says about one text: scores, categories, a severity and the evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.constants import CONTENT_CATEGORIES, SEVERITY_ORDER, Category, Severity

JSON_VERSION = 1


class AssessmentFormatError(ValueError):
    """A stored assessment that cannot be read back."""


@dataclass(frozen=True)
class RuleMatch:
    """One rule that fired, with the span of the original text it matched.

    Rules that judge the whole text (model scores) have an empty span at 0.
    """

    rule_id: str
    category: Category
    start: int
    end: int
    matched: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """A plain dict for storage."""
        return {
            "rule_id": self.rule_id,
            "category": self.category.value,
            "start": self.start,
            "end": self.end,
            "matched": self.matched,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleMatch:
        """Read back what ``to_json`` wrote."""
        try:
            match = cls(
                rule_id=str(data["rule_id"]),
                category=Category(data["category"]),
                start=int(data["start"]),
                end=int(data["end"]),
                matched=str(data["matched"]),
                reason=str(data["reason"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AssessmentFormatError(f"bad rule match {dict(data)!r}: {exc}") from exc
        if not 0 <= match.start <= match.end:
            raise AssessmentFormatError(f"bad span {match.start}..{match.end}")
        return match


@dataclass(frozen=True)
class Assessment:
    """The classifier's verdict on one text; ``model`` None means rules only (rescore later)."""

    scores: Mapping[str, float] = field(hash=False)
    categories: frozenset[Category]
    severity: Severity
    matches: tuple[RuleMatch, ...]
    model: str | None

    @property
    def unscored(self) -> bool:
        """True when no model scored this text, so it must be rescored when one is back."""
        return self.model is None

    def has(self, category: Category) -> bool:
        """Whether the text falls in ``category``."""
        return category in self.categories

    def at_least(self, severity: Severity) -> bool:
        """Whether the severity is ``severity`` or worse."""
        return SEVERITY_ORDER[self.severity] >= SEVERITY_ORDER[severity]

    def rule_ids(self, category: Category | None = None) -> tuple[str, ...]:
        """Ids of the rules that fired (for ``category`` only, when given), in order, once each."""
        seen: dict[str, None] = {}
        for match in self.matches:
            if category is None or match.category == category:
                seen.setdefault(match.rule_id, None)
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for storage (JSON-safe)."""
        return {
            "version": JSON_VERSION,
            "scores": {label: float(value) for label, value in sorted(self.scores.items())},
            "categories": sorted(c.value for c in self.categories),
            "severity": self.severity.value,
            "matches": [m.to_json() for m in self.matches],
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assessment:
        """Read back what ``to_json`` wrote; raises ``AssessmentFormatError`` on bad data."""
        if data.get("version", JSON_VERSION) != JSON_VERSION:
            raise AssessmentFormatError(f"unknown assessment version {data.get('version')!r}")
        try:
            scores = {str(k): float(v) for k, v in dict(data["scores"]).items()}
            categories = frozenset(Category(c) for c in data["categories"])
            severity = Severity(data["severity"])
            matches = tuple(RuleMatch.from_json(m) for m in data["matches"])
            model = data["model"]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, AssessmentFormatError):
                raise
            raise AssessmentFormatError(f"bad assessment: {exc}") from exc
        if model is not None and not isinstance(model, str):
            raise AssessmentFormatError(f"bad model {model!r}")
        if not categories <= CONTENT_CATEGORIES:
            raise AssessmentFormatError(f"not content categories: {sorted(categories)}")
        return cls(
            scores=scores, categories=categories, severity=severity, matches=matches, model=model
        )
