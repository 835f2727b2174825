"""Lexicon rules: data tables in ``lexicons/*.yaml``, compiled once, applied per school.

Each rule has an id (shown as the reason for a flag), a category, an optional severity,
``patterns`` (phrase patterns, see ``patterns.py``), optional ``unless`` patterns (a match
overlapping one of these does not count) and optional ``with`` patterns (at least one must
occur somewhere in the text too).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.classify.assessment import RuleMatch
from monitor.classify.patterns import PatternError, compile_literal, compile_pattern
from monitor.classify.severity import CATEGORY_SEVERITY, subject_macros
from monitor.classify.text import NormalisedText, normalise
from monitor.config_models import School
from monitor.constants import CONTENT_CATEGORIES, Category, Severity

log = logging.getLogger(__name__)

MAX_MATCHES_PER_RULE = 5  # evidence enough; a spam wall of one word stays small
_RULE_ID = r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$"
_NAME_WORD = re.compile(r"[^\W_]+")
_MASKED_TOKEN = re.compile(r"\S*\*\S*")
# Swearing is masked in full ("f***"); elsewhere a mostly masked word proves nothing.
_FULL_MASKING = frozenset({Category.ABUSIVE})


class LexiconError(ValueError):
    """A lexicon file that does not load; the message names the file and the rule."""


class RuleSpec(BaseModel):
    """One lexicon rule as written in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_RULE_ID)
    category: Category
    severity: Severity | None = None
    reason: str = Field(min_length=3)
    patterns: list[str] = Field(min_length=1)
    unless: list[str] = Field(default_factory=list)
    with_: list[str] = Field(default_factory=list, alias="with")


class LexiconFile(BaseModel):
    """A lexicon file: macros and/or rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    macros: dict[str, str] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


@dataclass(frozen=True, eq=False)  # hashed by identity: compiled rules are cached per lexicon
class Lexicon:
    """Every built-in macro and rule."""

    macros: Mapping[str, str]
    rules: tuple[RuleSpec, ...]


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run."""

    id: str
    category: Category
    severity: Severity
    reason: str
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()
    with_: tuple[re.Pattern[str], ...] = ()


def _read_files() -> Iterable[tuple[str, Any]]:
    folder = resources.files("monitor.classify") / "lexicons"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            yield entry.name, yaml.safe_load(entry.read_text(encoding="utf-8"))


@cache
def builtin_lexicon() -> Lexicon:
    """The lexicons shipped with the package, validated (cached)."""
    macros: dict[str, str] = {}
    rules: list[RuleSpec] = []
    for name, data in _read_files():
        try:
            parsed = LexiconFile.model_validate(data or {})
        except ValidationError as exc:
            raise LexiconError(f"lexicons/{name}: {exc}") from exc
        for key in parsed.macros:
            if key in macros:
                raise LexiconError(f"lexicons/{name}: macro {key!r} defined twice")
        macros.update(parsed.macros)
        rules.extend(parsed.rules)
    ids = [r.id for r in rules]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise LexiconError(f"rule ids defined twice: {', '.join(duplicates)}")
    return Lexicon(macros=macros, rules=tuple(rules))


def _compile_rule(spec: RuleSpec, macros: Mapping[str, str]) -> CompiledRule:
    try:
        return CompiledRule(
            id=spec.id,
            category=spec.category,
            severity=spec.severity or CATEGORY_SEVERITY[spec.category],
            reason=spec.reason,
            patterns=tuple(compile_pattern(p, macros) for p in spec.patterns),
            unless=tuple(compile_pattern(p, macros) for p in spec.unless),
            with_=tuple(compile_pattern(p, macros) for p in spec.with_),
        )
    except PatternError as exc:
        raise LexiconError(f"rule {spec.id}: {exc}") from exc


def _name_pattern(names: Iterable[str]) -> str:
    """A pattern-language alternative of the school's names (words only), each also in the
    possessive: the folded text drops apostrophes, so "Oakfield's" reads "oakfields"."""
    options = []
    for name in names:
        words = _NAME_WORD.findall(normalise(name).text)
        if words:
            options.append(" ".join(words))
            options.append(" ".join(words) + "s")
    return "(" + "|".join(options) + ")" if options else "(the school)"


@dataclass(frozen=True)
class RuleSet:
    """The built-in rules plus one school's extra terms and allow list."""

    rules: tuple[CompiledRule, ...]
    allow: tuple[re.Pattern[str], ...] = ()
    subjects: Mapping[str, re.Pattern[str]] = field(default_factory=dict)  # macro -> pattern

    def severity_of(self, rule_id: str) -> Severity | None:
        """The severity of rule ``rule_id``, if it is one of these."""
        return next((r.severity for r in self.rules if r.id == rule_id), None)

    def allowed_spans(self, norm: NormalisedText) -> list[tuple[int, int]]:
        """Normalised spans of the school's allow-listed terms."""
        return [m.span() for pattern in self.allow for m in pattern.finditer(norm.text)]

    def subjects_named(self, norm: NormalisedText) -> frozenset[str]:
        """The subject macros found in ``norm`` outside the school's allow-listed terms."""
        allowed = self.allowed_spans(norm)
        return frozenset(
            macro
            for macro, pattern in self.subjects.items()
            if any(not _overlaps(m.span(), allowed) for m in pattern.finditer(norm.text))
        )

    def match(self, norm: NormalisedText) -> list[tuple[RuleMatch, Severity]]:
        """Every rule that fires on ``norm``, with its severity, in text order."""
        allowed = self.allowed_spans(norm)
        found: list[tuple[int, RuleMatch, Severity]] = []
        for rule in self.rules:
            if rule.with_ and not any(p.search(norm.text) for p in rule.with_):
                continue
            vetoed = allowed + [m.span() for p in rule.unless for m in p.finditer(norm.text)]
            spans: list[tuple[int, int]] = []
            for pattern in rule.patterns:
                for m in pattern.finditer(norm.text):
                    start, end = _trim(norm.text, *m.span())
                    if end <= start or _overlaps((start, end), vetoed):
                        continue
                    if rule.category not in _FULL_MASKING and _over_masked(norm.text[start:end]):
                        continue
                    if _overlaps((start, end), spans):
                        continue
                    spans.append((start, end))
                    if len(spans) >= MAX_MATCHES_PER_RULE:
                        break
            for start, end in spans:
                o_start, o_end = norm.span(start, end)
                match = RuleMatch(
                    rule_id=rule.id,
                    category=rule.category,
                    start=o_start,
                    end=o_end,
                    matched=norm.original[o_start:o_end],
                    reason=rule.reason,
                )
                found.append((o_start, match, rule.severity))
        found.sort(key=lambda item: (item[0], item[1].rule_id))
        return [(match, severity) for _, match, severity in found]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop separators a pattern may have taken at either edge."""
    while start < end and not (text[start].isalnum() or text[start] in "*$@!|+"):
        start += 1
    while end > start and not text[end - 1].isalnum() and text[end - 1] != "*":
        end -= 1
    return start, end


def _over_masked(span_text: str) -> bool:
    """True when a word in the span is more than half asterisks (``f***ing`` is not ``failing``)."""
    for token in _MASKED_TOKEN.findall(span_text):
        if token.count("*") * 2 > sum(c.isalpha() for c in token):
            return True
    return False


def _overlaps(span: tuple[int, int], others: Sequence[tuple[int, int]]) -> bool:
    return any(span[0] < o_end and o_start < span[1] for o_start, o_end in others)


def _uses_school_name(
    text: str, macros: Mapping[str, str], seen: frozenset[str] = frozenset()
) -> bool:
    """Whether a pattern refers to ``{school_name}``, directly or through macros."""
    for name in re.findall(r"\{([a-z_][a-z0-9_]*)\}", text):
        if name == "school_name":
            return True
        if (
            name in macros
            and name not in seen
            and _uses_school_name(macros[name], macros, seen | {name})
        ):
            return True
    return False


@cache
def _generic_rules(lexicon: Lexicon) -> tuple[CompiledRule, ...]:
    """The built-in rules compiled without a school (shared by every school)."""
    macros = dict(lexicon.macros)
    macros["school_name"] = _name_pattern([])
    return tuple(_compile_rule(spec, macros) for spec in lexicon.rules)


def _compile_subjects(macros: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
    """The subject macros the score rules ask about, compiled with ``macros``."""
    try:
        return {name: compile_pattern("{" + name + "}", macros) for name in subject_macros()}
    except PatternError as exc:
        raise LexiconError(f"subject macro: {exc}") from exc


@cache
def _generic_subjects(lexicon: Lexicon) -> dict[str, re.Pattern[str]]:
    macros = dict(lexicon.macros)
    macros["school_name"] = _name_pattern([])
    return _compile_subjects(macros)


def build_ruleset(school: School | None = None, lexicon: Lexicon | None = None) -> RuleSet:
    """Compile the built-in rules for ``school`` (its names, extra terms and allow list)."""
    lexicon = lexicon or builtin_lexicon()
    generic = _generic_rules(lexicon)
    if school is None:
        return RuleSet(rules=generic, subjects=_generic_subjects(lexicon))
    macros = dict(lexicon.macros)
    macros["school_name"] = _name_pattern([school.name, *school.aliases])
    rules = [
        _compile_rule(spec, macros)
        if _uses_school_name(" ".join([*spec.patterns, *spec.unless, *spec.with_]), macros)
        else compiled
        for spec, compiled in zip(lexicon.rules, generic, strict=True)
    ]
    rules.extend(_extra_rules(school, macros))
    allow: list[re.Pattern[str]] = []
    for term in school.allow_terms:
        try:
            allow.append(compile_literal(term))
        except PatternError as exc:
            log.error("school %s: allow term ignored: %s", school.key, exc)
    return RuleSet(rules=tuple(rules), allow=tuple(allow), subjects=_compile_subjects(macros))


def _extra_rules(school: School, macros: Mapping[str, str]) -> list[CompiledRule]:
    """One rule per category from the school's ``extra_terms``; bad terms are logged, skipped."""
    out = []
    for category, terms in school.extra_terms.items():
        if category not in CONTENT_CATEGORIES:
            log.error(
                "school %s: extra terms for %s ignored (not a content category)",
                school.key,
                category,
            )
            continue
        patterns = []
        for term in terms:
            try:
                patterns.append(compile_pattern(term, macros))
            except PatternError as exc:
                log.error("school %s: extra %s term ignored: %s", school.key, category, exc)
        if patterns:
            out.append(
                CompiledRule(
                    id=f"SCHOOL-{category.value.upper().replace('_', '-')}",
                    category=category,
                    severity=CATEGORY_SEVERITY[category],
                    reason=f"a {category.value.replace('_', ' ')} term added for {school.name}",
                    patterns=tuple(patterns),
                )
            )
    return out
