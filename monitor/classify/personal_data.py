"""R12: phone numbers, emails, postcodes, street addresses and protected pupils' full names."""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.assessment import RuleMatch
from monitor.classify.patterns import PatternError, compile_literal
from monitor.classify.text import NormalisedText, clean
from monitor.constants import Category, Severity

log = logging.getLogger(__name__)

_SUFFIXES = (
    "road|rd|street|st|avenue|ave|lane|ln|close|drive|dr|crescent|cres|way|gardens|gdns|grove|"
    "place|pl|terrace|court|ct|mews|row|walk|square|sq|hill|park|view|rise|green|croft|fold|"
    "parade|boulevard|vale|meadows?|wharf|end|gate|chase"
)
_CUES = (
    r"lives?|living|address(?:\s+is)?|at\s+number|house\s+is|drop\s+(?:it\s+)?(?:off\s+)?at|"
    r"round\s+(?:to|at)|staying|stays?|moved\s+to"
)
_PHONE = re.compile(r"(?<![\w+])(?:\+\s?44|0044|0)[\s\-.()]*\d(?:[\s\-.()]?\d){8,10}(?![\w])")
_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b"
)
_POSTCODE = re.compile(
    r"(?<![\w])([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t]*(\d[ABD-HJLNP-UW-Zabd-hjlnp-uw-z]{2})(?![\w])"
)
_ORDINAL = re.compile(r"\d(?:st|nd|rd|th)", re.IGNORECASE)
_ADDRESS = re.compile(
    r"(?<![\w])\d{1,4}[A-Za-z]?,?[ \t]+(?:[A-Z][a-z'’-]+[ \t]+){1,3}(?:"
    + _SUFFIXES.title()
    + r")\b"
)
_ADDRESS_CUED = re.compile(
    r"(?:" + _CUES + r")[ \t]+(?:(?:at|on|in)[ \t]+)?"
    r"(\d{1,4}[a-z]?,?[ \t]+(?:[a-z'’-]+[ \t]+){1,3}(?:" + _SUFFIXES + r"))\b",
    re.IGNORECASE,
)
# Shared mailboxes a school publishes are not anyone's personal data.
ROLE_MAILBOXES = frozenset(
    [
        "office",
        "admin",
        "info",
        "enquiries",
        "enquiry",
        "reception",
        "admissions",
        "head",
        "headteacher",
        "hello",
        "contact",
        "finance",
        "governors",
        "clerk",
        "senco",
        "sendco",
        "safeguarding",
        "dsl",
        "attendance",
        "absence",
        "absences",
        "exams",
        "hr",
        "press",
        "media",
        "comms",
        "communications",
        "support",
        "help",
        "bursar",
        "parents",
        "pta",
        "recruitment",
        "careers",
        "library",
        "ict",
        "it",
        "helpdesk",
        "noreply",
        "no-reply",
        "trips",
        "uniform",
        "schooloffice",
        "studentservices",
    ]
)


@dataclass(frozen=True)
class _Rule:
    id: str
    reason: str
    severity: Severity


PD_PHONE = _Rule("PD-PHONE", "a UK phone number", Severity.MEDIUM)
PD_EMAIL = _Rule("PD-EMAIL", "a personal email address", Severity.MEDIUM)
PD_POSTCODE = _Rule("PD-POSTCODE", "a UK postcode", Severity.MEDIUM)
PD_ADDRESS = _Rule("PD-ADDRESS", "a street address", Severity.MEDIUM)
PD_PUPIL_NAME = _Rule("PD-PUPIL-NAME", "a pupil on the protected list named in full", Severity.HIGH)


def _valid_phone(candidate: str) -> bool:
    """UK numbers: 0 then ten digits (or nine for a few areas), first digit 1, 2, 3, 7 or 8."""
    digits = re.sub(r"\D", "", candidate)
    international = digits.startswith("0044") or (
        digits.startswith("44") and candidate.lstrip().startswith("+")
    )
    if international:
        national = digits[4:] if digits.startswith("0044") else digits[2:]
        digits = "0" + national.removeprefix("0")  # "+44 (0)20 ..." writes the trunk 0 too
    return digits.startswith("0") and len(digits) in (10, 11) and digits[1] in "12378"


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        if _valid_phone(m.group()):
            yield m.span()


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        local = re.sub(r"\d+$", "", m.group(1).lower())
        if local not in ROLE_MAILBOXES:
            yield m.span()


def _postcodes(text: str) -> Iterator[tuple[int, int]]:
    for m in _POSTCODE.finditer(text):
        inward = m.group(2)
        if inward.islower() and _ORDINAL.fullmatch(inward):
            continue  # "y7 2nd": lower-case ordinals are not postcodes
        if m.group().islower() and not any(c.isspace() for c in m.group()):
            continue  # "ab12cd" run together in lower case: too likely a username or code
        yield m.span()


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    for m in _ADDRESS.finditer(text):
        seen.append(m.span())
        yield m.span()
    for m in _ADDRESS_CUED.finditer(text):
        span = m.span(1)
        if not any(s < span[1] and span[0] < e for s, e in seen):
            yield span


_FINDERS: tuple[tuple[_Rule, Callable[[str], Iterator[tuple[int, int]]]], ...] = (
    (PD_PHONE, _phones),
    (PD_EMAIL, _emails),
    (PD_POSTCODE, _postcodes),
    (PD_ADDRESS, _addresses),
)


def _match(rule: _Rule, original: str, start: int, end: int) -> tuple[RuleMatch, Severity]:
    return (
        RuleMatch(
            rule_id=rule.id,
            category=Category.PERSONAL_DATA,
            start=start,
            end=end,
            matched=original[start:end],
            reason=rule.reason,
        ),
        rule.severity,
    )


def find_contact_details(text: str | NormalisedText) -> list[tuple[RuleMatch, Severity]]:
    """Phone numbers, personal emails, postcodes and street addresses in ``text``.

    They are looked for in the clean view (``text.clean()``, or a clean view passed in):
    characters nobody sees do not hide them; spans point into the original.
    """
    view = text if isinstance(text, NormalisedText) else clean(text)
    found: list[tuple[RuleMatch, Severity]] = []
    taken: list[tuple[int, int]] = []
    for rule, finder in _FINDERS:
        for start, end in finder(view.text):
            if any(s < end and start < e for s, e in taken):
                continue  # a postcode inside an address already found, say
            taken.append((start, end))
            found.append(_match(rule, view.original, *view.span(start, end)))
    found.sort(key=lambda item: item[0].start)
    return found


_FIRST_AND_LAST = 2  # a full name has at least a first and a last name


def full_name_variants(name: str) -> list[str]:
    """``"Harry James Lister"`` -> itself and ``"Harry Lister"``; one-word names give nothing."""
    words = name.split()
    if len(words) < _FIRST_AND_LAST:
        return []
    variants = [" ".join(words)]
    if len(words) > _FIRST_AND_LAST:
        variants.append(f"{words[0]} {words[-1]}")
    return variants


class ProtectedNames:
    """The protected pupils list (one full name a line, ``#`` comments), reloaded when it changes.

    A missing or unreadable file is logged once and turns the check off until it is fixed;
    a file that group or others can read is warned about once. Names are never logged.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._problem: str | None = None
        self._warned_mode = False

    @property
    def count(self) -> int:
        """How many name patterns are loaded (after a refresh)."""
        self.refresh()
        return len(self._patterns)

    def refresh(self) -> None:
        """Reload the file if it changed since the last look."""
        with self._lock:
            try:
                info = self.path.stat()
            except OSError as exc:
                self._fail(f"protected names file {self.path} cannot be read ({exc.strerror})")
                return
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and not self._warned_mode:
                self._warned_mode = True
                log.warning(
                    "protected names file %s can be read by group or others (mode %o): "
                    "it lists pupils; run: chmod 600 %s",
                    self.path,
                    stat.S_IMODE(info.st_mode),
                    self.path,
                )
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                self._fail(f"protected names file {self.path} cannot be read ({exc})")
                return
            self._stamp = stamp
            self._problem = None
            self._patterns = self._compile(lines)
            log.info("protected names file %s loaded: %d names", self.path, len(self._patterns))

    def _compile(self, lines: list[str]) -> tuple[re.Pattern[str], ...]:
        patterns: list[re.Pattern[str]] = []
        for number, raw in enumerate(lines, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            variants = full_name_variants(line)
            if not variants:
                log.warning(
                    "protected names file %s line %d: one word only; list full names "
                    "(a first name alone may be used)",
                    self.path,
                    number,
                )
            for variant in variants:
                try:
                    patterns.append(compile_literal(variant))
                except PatternError:
                    log.warning("protected names file %s line %d: not a name", self.path, number)
        return tuple(patterns)

    def _fail(self, problem: str) -> None:
        if problem != self._problem:
            log.error("%s: the full-name check (R12) is off until it is fixed", problem)
        self._problem = problem
        self._stamp = None
        self._patterns = ()

    def find(self, norm: NormalisedText) -> list[tuple[RuleMatch, Severity]]:
        """Full names from the list in ``norm``; first names and initials alone never match."""
        self.refresh()
        spans: list[tuple[int, int]] = []
        for pattern in self._patterns:
            for m in pattern.finditer(norm.text):
                if not any(s < m.end() and m.start() < e for s, e in spans):
                    spans.append(m.span())
        out = []
        for start, end in sorted(spans):
            o_start, o_end = norm.span(start, end)
            out.append(_match(PD_PUPIL_NAME, norm.original, o_start, o_end))
        return out
