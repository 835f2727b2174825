"""The one normaliser every rule reads through, with a map back to the original text.

Two views of a comment, each with ``origin[i]`` the index in the original of character ``i``:

- ``clean(original)``: what a reader sees. Every default-ignorable code point (variation
  selectors, U+034F, Hangul fillers, zero-width and direction marks, tags...), control and
  format character and non-spacing mark is removed; every kind of blank (the braille blank
  included) becomes a space or a line break; compatibility forms are folded (NFKC). Case,
  digits and punctuation stay, so contact details are found in it.
- ``normalise(original)``: the clean view casefolded, accent-free, with look-alike letters
  mapped to Latin, apostrophes dropped, and letters split to dodge filters joined again:
  single separators between single letters (``k.i.l.l``, ``k-i-l-l``, ``k_i_l_l``) are
  nothing, and runs of at least four spaced letters (``k i l l``) are one word. Lexicon
  rules, questions and protected names read it.

The whole text is read. ``NormalisedText.windows`` cuts a long text into overlapping
windows so that rules stay cheap on every window, and a phrase across a cut is still whole
in the next window.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Unicode DerivedCoreProperties.txt, Default_Ignorable_Code_Point (Unicode 15.1), as
# inclusive ranges. A test checks them against the ``regex`` module's own Unicode tables.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero width space, (non-)joiner, direction marks
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero width no-break space (byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned specials
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
_IGNORABLE_STARTS = tuple(start for start, _ in DEFAULT_IGNORABLE)
# Characters a reader sees as blank although Unicode does not call them spaces.
_BLANKS = frozenset("\u2800")  # braille pattern blank
_LINE_BREAKS = frozenset("\n\r\u2028\u2029\x0b\x0c\x85\x1c\x1d\x1e")
# Removed wherever they are: controls, formats, surrogates, marks drawn on another letter.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Mn", "Me"})
# Plain printable ASCII and line feeds need no per-character work.
_CLEAN_SPECIAL = re.compile(r"[^\x20-\x7e\n]")
_FOLD_SPECIAL = re.compile(r"[^\x20-\x26\x28-\x5f\x61-\x7e\n]")  # also ' and `

# Look-alike letters people use to dodge filters (Cyrillic and Greek), mapped to Latin.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "к": "k",
        "м": "m",
        "т": "t",
        "н": "h",
        "в": "b",
        "α": "a",
        "ο": "o",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "τ": "t",
    }
)
# Apostrophes vanish so that "I'm", "Im" and "I’m" read alike ("im").
_APOSTROPHES = frozenset("'’‘`´ʼ")
# Single letters split by one separator each ("k.i.l.l", "k-i-l-l", "k_i_l_l", "k·i·l·l").
_SEPARATORS = ".\\-_\u00b7\u2010\u2011\u2012\u2013\u2014\u2022\u2027\u2219"
_SPLIT = re.compile(rf"(?<![^\W_])[^\W\d_](?:[{_SEPARATORS}][^\W\d_])+(?![^\W_])")
# Letters spaced out to dodge filters ("k i l l") are joined when at least this many run.
_SPACED_RUN = 4
_SPACED = re.compile(rf"(?<![^\W_])(?:[^\W\d_] ){{{_SPACED_RUN - 1},}}[^\W\d_](?![^\W_])")

# Rules read a long text in windows of this many normalised characters, each overlapping
# the one before by ``WINDOW_OVERLAP`` (a phrase shorter than that is always whole in one).
WINDOW_CHARS = 20_000
WINDOW_OVERLAP = 2_000
# A window ends at a line break, else a sentence end, else a space, if one is this near its
# end: repeated text then cuts into identical windows, which the engine reads once.
_CUT_SEARCH = WINDOW_CHARS // 4


def is_default_ignorable(char: str) -> bool:
    """Whether ``char`` is a Default_Ignorable_Code_Point."""
    code = ord(char)
    index = bisect.bisect_right(_IGNORABLE_STARTS, code) - 1
    return index >= 0 and code <= DEFAULT_IGNORABLE[index][1]


@dataclass(frozen=True)
class NormalisedText:
    """A view of ``original``; ``origin[i]`` is the original index of ``text[i]``."""

    original: str
    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``(start, end)`` of ``text[start:end]``."""
        if end <= start:
            return (self.origin[start] if start < len(self.origin) else len(self.original),) * 2
        return self.origin[start], self.origin[end - 1] + 1

    def windows(
        self, size: int = WINDOW_CHARS, overlap: int = WINDOW_OVERLAP
    ) -> Iterator[NormalisedText]:
        """The whole view in windows of about ``size``, each overlapping the last by ``overlap``+."""
        start = 0
        while True:
            end = len(self.text) if start + size >= len(self.text) else self._cut(start + size)
            if start == 0 and end == len(self.text):
                yield self
                return
            yield NormalisedText(self.original, self.text[start:end], self.origin[start:end])
            if end >= len(self.text):
                return
            start = max(start + 1, self._cut(end - overlap))

    def _cut(self, limit: int) -> int:
        """A cut at or a little before ``limit``: after a line break, sentence end or space."""
        low = max(0, limit - _CUT_SEARCH)
        for mark in ("\n", ". ", "! ", "? ", " "):
            found = self.text.rfind(mark, low, limit)
            if found >= 0:
                return found + len(mark)
        return limit


def clean(original: str) -> NormalisedText:
    """The view a reader sees: invisible characters gone, blanks unified, NFKC, case kept."""
    chars: list[str] = []
    origin: list[int] = []
    last = 0
    for special in _CLEAN_SPECIAL.finditer(original):
        index = special.start()
        if index > last:
            chars.append(original[last:index])
            origin.extend(range(last, index))
        last = index + 1
        char = original[index]
        if char.isspace() or char in _BLANKS:
            chars.append("\n" if char in _LINE_BREAKS else " ")
            origin.append(index)
            continue
        if is_default_ignorable(char) or unicodedata.category(char) in _DROPPED_CATEGORIES:
            continue
        for part in unicodedata.normalize("NFKC", char):
            if part.isspace():
                part = " "
            elif unicodedata.category(part) in _DROPPED_CATEGORIES:
                continue
            chars.append(part)
            origin.append(index)
    if last == 0 and not chars:
        return NormalisedText(original, original, tuple(range(len(original))))
    if last < len(original):
        chars.append(original[last:])
        origin.extend(range(last, len(original)))
    return NormalisedText(original, "".join(chars), tuple(origin))


def normalise(original: str) -> NormalisedText:
    """Casefolded, accent-free text with look-alikes mapped and split letters joined."""
    return fold(clean(original))


def fold(view: NormalisedText) -> NormalisedText:
    """The matching view of a clean view (see the module docstring)."""
    source = view.text
    chars: list[str] = []
    local: list[int] = []
    last = 0
    for special in _FOLD_SPECIAL.finditer(source):
        index = special.start()
        if index > last:
            chars.append(source[last:index].lower())
            local.extend(range(last, index))
        last = index + 1
        char = source[index]
        if char in _APOSTROPHES:
            continue
        for part in unicodedata.normalize("NFKD", char):
            if unicodedata.category(part) in _DROPPED_CATEGORIES:
                continue
            for out in part.casefold().translate(_HOMOGLYPHS):
                if out.isspace():
                    out = "\n" if out in _LINE_BREAKS else " "
                chars.append(out)
                local.append(index)
    if last < len(source):
        chars.append(source[last:].lower())
        local.extend(range(last, len(source)))
    text = "".join(chars)
    text, local = _join(_SPLIT, text, local, keep=str.isalpha)
    if " " in text:
        text, local = _join(_SPACED, text, local, keep=lambda c: c != " ")
    origin = view.origin
    return NormalisedText(view.original, text, tuple(origin[i] for i in local))


def _join(
    pattern: re.Pattern[str], text: str, origin: list[int], keep: Callable[[str], bool]
) -> tuple[str, list[int]]:
    """Each match of ``pattern`` reduced to the characters ``keep`` accepts, offsets kept."""
    out: list[str] = []
    out_origin: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out_origin.extend(origin[last : match.start()])
        for offset in range(match.start(), match.end()):
            if keep(text[offset]):
                out.append(text[offset])
                out_origin.append(origin[offset])
        last = match.end()
    if last == 0:
        return text, origin
    out.append(text[last:])
    out_origin.extend(origin[last:])
    return "".join(out), out_origin
