"""Every rule for one school, and the step that turns rule hits and scores into an assessment."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from monitor.classify.assessment import Assessment, RuleMatch
from monitor.classify.personal_data import ProtectedNames, find_contact_details
from monitor.classify.questions import find_questions
from monitor.classify.rules import MAX_MATCHES_PER_RULE, RuleSet, build_ruleset
from monitor.classify.severity import CATEGORY_SEVERITY, score_hits, worst
from monitor.classify.text import NormalisedText, clean, fold, normalise
from monitor.config_models import School
from monitor.constants import Severity

Hit = tuple[RuleMatch, Severity]
# What an allow-listed term becomes before the model reads the text: a plain, neutral word.
ALLOWED_PLACEHOLDER = "name"


class RuleEngine:
    """Lexicon rules, question detection, contact details and protected names for one school."""

    def __init__(self, ruleset: RuleSet, names: ProtectedNames | None = None) -> None:
        self.ruleset = ruleset
        self.names = names

    @classmethod
    def for_school(cls, school: School | None, names: ProtectedNames | None = None) -> RuleEngine:
        """The engine with ``school``'s names, extra terms and allow list (None: none)."""
        return cls(build_ruleset(school), names)

    def run(self, text: str) -> list[Hit]:
        """Every rule hit on the whole of ``text``, in text order (see ``text.py``)."""
        view = clean(text)
        norm = fold(view)
        found: list[Hit] = []
        seen: dict[tuple[str, str], list[Hit]] = {}  # repeated text: each window read once
        for window in norm.windows():
            offset = window.origin[0] if window.origin else 0
            key = (window.text, text[offset : window.origin[-1] + 1] if window.origin else "")
            if key not in seen:
                seen[key] = [_shifted(hit, -offset) for hit in self._window_hits(window)]
            found.extend(_shifted(hit, offset) for hit in seen[key])
        allowed = [norm.span(*span) for span in self.ruleset.allowed_spans(norm)]
        for hit in find_contact_details(view):
            if not any(s < hit[0].end and hit[0].start < e for s, e in allowed):
                found.append(hit)
        return _merged(found)

    def subjects_named(self, text: str) -> frozenset[str]:
        """The subject macros (``severity.subject_macros``) that ``text`` names anywhere."""
        return self.ruleset.subjects_named(fold(clean(text)))

    def _window_hits(self, window: NormalisedText) -> list[Hit]:
        hits = self.ruleset.match(window)
        hits.extend(find_questions(window))
        if self.names is not None:
            hits.extend(self.names.find(window))
        return hits

    def for_model(self, text: str) -> str:
        """``text`` with the school's allow-listed terms replaced by a neutral word."""
        if not self.ruleset.allow:
            return text
        norm = normalise(text)
        spans = sorted(norm.span(*span) for span in self.ruleset.allowed_spans(norm))
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            if start < last:
                continue
            out.append(text[last:start])
            out.append(ALLOWED_PLACEHOLDER)
            last = end
        out.append(text[last:])
        return "".join(out)


def _shifted(hit: Hit, offset: int) -> Hit:
    match, severity = hit
    if offset == 0:
        return hit
    return dataclasses.replace(match, start=match.start + offset, end=match.end + offset), severity


def _merged(hits: list[Hit]) -> list[Hit]:
    """One hit per place and rule (windows overlap: the longest wins), at most a few per rule."""
    by_rule: dict[str, list[Hit]] = {}
    for hit in sorted(hits, key=lambda h: (h[0].rule_id, h[0].start, -h[0].end)):
        kept = by_rule.setdefault(hit[0].rule_id, [])
        if kept and hit[0].start < kept[-1][0].end:
            if hit[0].end - hit[0].start > kept[-1][0].end - kept[-1][0].start:
                kept[-1] = hit
            continue
        kept.append(hit)
    out = [hit for kept in by_rule.values() for hit in kept[:MAX_MATCHES_PER_RULE]]
    out.sort(key=lambda h: (h[0].start, h[0].rule_id))
    return out


def combine(
    hits: Sequence[Hit],
    scores: Mapping[str, float] | None,
    thresholds: Mapping[str, float | None],
    model: str | None,
    *,
    named: frozenset[str] = frozenset(),
) -> Assessment:
    """The assessment of a text from its rule hits and (when scored) the model's scores.

    ``named``: the subject macros the text names (``RuleEngine.subjects_named``), which turn
    a score rule into its named-subject form (``severity.NamedSubject``).
    """
    all_hits = list(hits)
    if scores is not None:
        for rule, score, threshold in score_hits(scores, thresholds):
            rule_id, reason = rule.for_text(named)
            match = RuleMatch(
                rule_id=rule_id,
                category=rule.category,
                start=0,
                end=0,
                matched="",
                reason=f"{reason}: {rule.label} {score:.2f} >= {threshold:.2f}",
            )
            all_hits.append((match, rule.severity))
    categories = frozenset(match.category for match, _ in all_hits)
    severity = worst(
        [severity for _, severity in all_hits] + [CATEGORY_SEVERITY[c] for c in categories]
    )
    return Assessment(
        scores=dict(scores) if scores is not None else {},
        categories=categories,
        severity=severity,
        matches=tuple(match for match, _ in all_hits),
        model=model if scores is not None else None,
    )
