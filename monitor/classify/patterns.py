"""A small phrase language for lexicons, compiled to regular expressions on normalised text.

A pattern is a phrase of words, matched on ``text.normalise()`` output (lower case, no
accents, no apostrophes, so ``I'm`` reads ``im``; invisible characters gone and letters
split one by one, ``k.i.l.l`` or ``k i l l``, already joined):

- ``word``: the word, tolerant of repeated letters (``killl``), a doubled letter typed once
  (``kil``), look-alike digits and symbols (``k1ll``, ``$uicide``), letters masked with
  ``*`` (``k*ll``) and, in words of six letters or more, dots or dashes between letters
  (``s.u.i.c.i.d.e``); a trailing ``*`` takes any ending (``bull*``); a ``-`` inside a word
  means an optional separator (``self-harm`` matches ``selfharm`` and ``self harm``).
- ``(a|b c)``: one of the alternatives; ``x?`` makes a word or group optional.
- ``^`` starting a phrase: only at the start of the text or of a sentence.
- ``...``: up to four other words; ``#``: a number (``7``, ``9s``, ``3rd``); ``{name}``: a
  named macro.

Words between them may be separated by any spaces or punctuation; a word never matches
inside a longer word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.classify.text import normalise

# Digits and symbols used in place of letters, per letter.
LEET: dict[str, str] = {
    "a": "4@",
    "b": "8",
    "e": "3",
    "g": "9",
    "i": "1!|",
    "l": "1|",
    "o": "0",
    "s": "5$",
    "t": "7+",
}
_LONG_WORD = 6  # from this many letters, ``s.u.i.c.i.d.e`` still matches
_GAP_WORDS = 4
_MAX_MACRO_DEPTH = 8  # a macro used inside a macro, this many levels deep at most
# A word never starts or ends inside a longer word, nor inside a masked one ("f***ing").
_NOT_WORD_BEFORE = r"(?<![^\W_])(?<!\*)"
_NOT_WORD_AFTER = r"(?![^\W_])(?!\*)"
_SEP = r"[\W_]*"
_TOKEN = re.compile(r"\s+|\.\.\.|[()|?^]|\{[a-z_][a-z0-9_]*\}|#|[^\s()|?^{}]+")
# "^": the start of the text or of a sentence.
_START = r"(?:^|(?<=[.!?\n]))"


class PatternError(ValueError):
    """A lexicon pattern that does not parse; the message says where."""


@dataclass(frozen=True)
class _Element:
    regex: str
    optional: bool = False
    gap: bool = False
    anchor: bool = False


def _letter(char: str, *, first: bool) -> str:
    """One letter of a word: its look-alikes, repeatable, maskable unless first."""
    options = re.escape(char) + "".join(re.escape(c) for c in LEET.get(char, ""))
    cls = f"[{options}]" if len(options) > 1 else options
    return f"{cls}+" if first else f"(?:{cls}|\\*)+"


def compile_word(word: str) -> str:
    """The regex for one pattern word (see the module docstring)."""
    suffix = word.endswith("*") and len(word) > 1
    if suffix:
        word = word[:-1]
    pieces: list[str] = []
    for part_index, part in enumerate(word.split("-")):
        if not part:
            continue
        text = normalise(part).text
        letters = [c for i, c in enumerate(text) if i == 0 or c != text[i - 1]]
        spaced = sum(c.isalpha() for c in text) >= _LONG_WORD
        chunk: list[str] = []
        for index, char in enumerate(letters):
            if char.isalpha():
                chunk.append(_letter(char, first=index == 0 and part_index == 0))
            else:
                chunk.append(re.escape(char) + ("+" if char.isdigit() else ""))
            if spaced and index < len(letters) - 1:
                chunk.append(r"[.\-_]?")
        pieces.append("".join(chunk))
    if not pieces:
        raise PatternError(f"empty word {word!r}")
    regex = _SEP.join(pieces)
    if suffix:
        regex += r"[^\W_]*"
    return regex


class _Parser:
    """Recursive-descent parser of one pattern."""

    def __init__(self, pattern: str, macros: Mapping[str, str], depth: int = 0) -> None:
        self.pattern = pattern
        self.macros = macros
        self.depth = depth
        self.tokens: list[str] = [t for t in _TOKEN.findall(pattern) if not t.isspace()]
        self.pos = 0
        self.nesting = 0  # inside a group, a gap may end an alternative ("(mr ...) will")

    def fail(self, message: str) -> PatternError:
        return PatternError(f"{message} in pattern {self.pattern!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> str:
        regex = self.alternatives()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return regex

    def alternatives(self) -> str:
        options = [self.sequence()]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence())
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    def sequence(self) -> str:
        elements: list[_Element] = []
        while (token := self.peek()) is not None and token not in "|)":
            elements.append(self.element())
        if not elements:
            raise self.fail("empty phrase")
        if any(e.anchor for e in elements[1:]):
            raise self.fail("'^' may only start a phrase")
        if self.nesting == 0 and self.depth == 0 and (elements[0].gap or elements[-1].gap):
            raise self.fail("'...' must stand between two words")
        out = "(?:" + elements[0].regex + ")" + ("?" if elements[0].optional else "")
        for element in elements[1:]:
            out += f"(?:{_SEP}{element.regex})" + ("?" if element.optional else "")
        return out

    def element(self) -> _Element:
        token = self.take()
        if token == "(":
            self.nesting += 1
            regex = self.alternatives()
            self.nesting -= 1
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.take()
        elif token == "...":
            return _Element(regex=rf"(?:[^\W_]+[\W_]+){{0,{_GAP_WORDS}}}", gap=True)
        elif token == "^":
            return _Element(regex=_START, anchor=True)
        elif token == "#":
            regex = r"\d+(?:st|nd|rd|th|s)?" + _NOT_WORD_AFTER
        elif token.startswith("{"):
            name = token[1:-1]
            if name not in self.macros:
                raise self.fail(f"unknown macro {{{name}}}")
            if self.depth > _MAX_MACRO_DEPTH:
                raise self.fail("macros nest too deep")
            regex = _Parser(self.macros[name], self.macros, self.depth + 1).parse()
        elif token in "|)?":
            raise self.fail(f"unexpected {token!r}")
        else:
            regex = compile_word(token) + _NOT_WORD_AFTER
        optional = self.peek() == "?"
        if optional:
            self.take()
        return _Element(regex=regex, optional=optional)


def compile_pattern(pattern: str, macros: Mapping[str, str] | None = None) -> re.Pattern[str]:
    """Compile one phrase pattern; raises ``PatternError`` naming the problem."""
    body = _Parser(pattern, macros or {}).parse()
    try:
        return re.compile(_NOT_WORD_BEFORE + body)
    except re.error as exc:  # a bug in this module, not in the lexicon
        raise PatternError(f"{exc} in pattern {pattern!r}") from exc


def compile_literal(phrase: str) -> re.Pattern[str]:
    """A plain phrase (a name, an allow-listed term): its words in order, any case or accents."""
    # Pieces of one word ("Hughes-Patel") may be joined or split; separate words may not join.
    words = [re.findall(r"[^\W_]+", word) for word in normalise(phrase).text.split()]
    words = [pieces for pieces in words if pieces]
    if not words:
        raise PatternError(f"empty phrase {phrase!r}")
    body = r"[\W_]+".join(_SEP.join(re.escape(p) for p in pieces) for pieces in words)
    return re.compile(_NOT_WORD_BEFORE + body + "s?" + _NOT_WORD_AFTER)  # "s?": possessives
