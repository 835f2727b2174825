"""The phrase language of the lexicons and the normalised text it runs on."""

from __future__ import annotations

import re

import pytest

from monitor.classify.patterns import PatternError, compile_literal, compile_pattern
from monitor.classify.text import normalise

MACROS = {"self": "(myself|my-self)", "nested": "({self}|yourself)"}


@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("kill {self}", "I could kill myself", True),
        ("kill {self}", "KILLLL MY SELF", True),
        ("kill {self}", "k1ll myself", True),
        ("kill {self}", "k*ll myself", True),
        ("kill {self}", "kil myself", True),
        ("kill {self}", "skill myself", False),
        ("kill {self}", "kill myselfie", False),
        ("kill {nested}", "kill yourself", True),
        ("suicide", "s.u.i.c.i.d.e", True),
        ("suicide", "s u i c i d e", True),
        ("suicide", "$uicide", True),
        ("suicide", "SUÏCIDE", True),
        ("suicide", "suіcide", True),  # Cyrillic і
        ("self-harm*", "selfharming", True),
        ("self-harm*", "self harm", True),
        ("self-harm*", "selfish", False),
        ("bull*", "bullied", True),
        ("want ... die", "i want to just die", True),
        ("want ... die", "want aa bb cc dd ee die", False),
        ("year #", "year 9s", True),
        ("year #", "year nine", False),
        ("i am (not)? ok", "i am ok", True),
        ("i am (not)? ok", "i am not ok", True),
        ("^ hello", "well. Hello there", True),
        ("^ hello", "well hello there", False),
        ("im", "I'm", True),
        ("fuck", "f***", True),
        ("fuck off", "f**k off", True),
        ("fat", "f***ing", False),  # a masked word is matched whole or not at all
    ],
)
def test_patterns(pattern: str, text: str, hit: bool) -> None:
    assert bool(compile_pattern(pattern, MACROS).search(normalise(text).text)) is hit


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a|b", "missing ')'"),
        ("a)", "unexpected ')'"),
        ("... a", "'...' must stand between two words"),
        ("{nope}", "unknown macro"),
        ("a ^ b", "'^' may only start a phrase"),
        ("", "empty phrase"),
        ("(a||b)", "empty phrase"),
    ],
)
def test_bad_patterns_say_what_is_wrong(pattern: str, problem: str) -> None:
    with pytest.raises(PatternError, match=re.escape(problem)):
        compile_pattern(pattern, MACROS)


def test_macros_cannot_loop_forever() -> None:
    with pytest.raises(PatternError, match="nest too deep"):
        compile_pattern("{a}", {"a": "x {a}"})


def test_literals_match_whole_words_in_any_case_and_possessive() -> None:
    pattern = compile_literal("Ann Abel")
    assert pattern.search(normalise("ANN ABEL's coat").text)
    assert not pattern.search(normalise("Annabel").text)


def test_normalised_offsets_map_back() -> None:
    text = "Ｉ’m ﬁne — k i l l"
    norm = normalise(text)
    assert norm.text == "im fine — kill"
    start = norm.text.index("kill")
    o_start, o_end = norm.span(start, start + 4)
    assert text[o_start:o_end] == "k i l l"
    assert norm.span(3, 3) == (norm.origin[3], norm.origin[3])
