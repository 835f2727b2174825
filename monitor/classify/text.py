"""A normalised view of a comment for lexicon matching, with a map back to the original."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Rules read at most this much of one text (Reddit's limit is 10,000): a hostile megabyte
# comment stays cheap.
MAX_RULE_CHARS = 20_000

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
# Letters spaced out to dodge filters ("k i l l") are joined when at least this many run.
_SPACED_RUN = 4
_SPACED = re.compile(rf"(?<![^\W_])(?:[^\W\d_] ){{{_SPACED_RUN - 1},}}[^\W\d_](?![^\W_])")


@dataclass(frozen=True)
class NormalisedText:
    """Casefolded, accent-free text with look-alikes mapped; ``origin[i]`` is the source index."""

    original: str
    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``(start, end)`` of the normalised ``text[start:end]``."""
        if end <= start:
            return (self.origin[start] if start < len(self.origin) else len(self.original),) * 2
        return self.origin[start], self.origin[end - 1] + 1


def normalise(original: str) -> NormalisedText:
    """The normalised view of ``original`` (first ``MAX_RULE_CHARS`` characters)."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(original[:MAX_RULE_CHARS]):
        if char in _APOSTROPHES:
            continue
        category = unicodedata.category(char)
        if category == "Cf":  # zero-width joiners, direction overrides and the like
            continue
        for part in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(part):
                continue
            for out in part.casefold().translate(_HOMOGLYPHS):
                if out.isspace():  # line breaks end sentences; other spacing is a space
                    out = "\n" if out in "\n\r\u2028\u2029\x0b\x0c\x85" else " "
                chars.append(out)
                origin.append(index)
    text = "".join(chars)
    if " " in text:
        text, origin = _join_spaced_letters(text, origin)
    return NormalisedText(original=original, text=text, origin=tuple(origin))


def _join_spaced_letters(text: str, origin: list[int]) -> tuple[str, list[int]]:
    """Join runs like ``s u i c i d e`` into one word, keeping the offset map."""
    out: list[str] = []
    out_origin: list[int] = []
    last = 0
    for match in _SPACED.finditer(text):
        out.append(text[last : match.start()])
        out_origin.extend(origin[last : match.start()])
        for offset in range(match.start(), match.end()):
            if text[offset] != " ":
                out.append(text[offset])
                out_origin.append(origin[offset])
        last = match.end()
    if last == 0:
        return text, origin
    out.append(text[last:])
    out_origin.extend(origin[last:])
    return "".join(out), out_origin
