"""Issue 13: invisible characters and split letters do not dodge the rules; the whole text is read."""

from __future__ import annotations

import sys

import pytest

from monitor.classify.engine import RuleEngine, combine
from monitor.classify.text import DEFAULT_IGNORABLE, WINDOW_CHARS, clean, normalise
from monitor.config_models import School
from monitor.constants import Category

SCHOOL = School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield", "OFA"])
FAR = "Lovely to see everyone at the fair today. " * 1_000  # 42,000 characters

# (rule id, text): the rule must fire on the text.
FIRES = [
    ("SG-SELF-HARM-INCITE", "go and ki\ufe0fll yourself"),  # variation selector
    ("SG-SELF-HARM-INCITE", "go and k\ufe0fi\ufe0fl\ufe0fl yourself"),
    ("SG-SELF-HARM-INCITE", "just k\U000e0100ys"),  # variation selector supplement
    ("SG-SELF-HARM-INCITE", "go and ki\u034fll yourself"),  # combining grapheme joiner
    ("SG-SELF-HARM-INCITE", "go and ki\u3164ll yourself"),  # Hangul filler
    ("SG-SELF-HARM-INCITE", "go and ki\u115fll yourself"),  # Hangul choseong filler
    ("SG-SELF-HARM-INCITE", "go and ki\uffa0ll yourself"),  # halfwidth Hangul filler
    ("SG-SELF-HARM-INCITE", "go and k\u2800i\u2800l\u2800l yourself"),  # braille blank
    ("SG-SELF-HARM-INCITE", "go and kill\u2800yourself"),
    ("SG-SELF-HARM-INCITE", "go and ki\x01ll yourself"),  # control characters
    ("SG-SELF-HARM-INCITE", "go and ki\x7fll your\x1bself"),
    ("SG-SELF-HARM-INCITE", "go and ki\u00adll yourself"),  # soft hyphen
    ("SG-SELF-HARM-INCITE", "go and ki\U000e0041ll yourself"),  # tag letter
    ("SG-SELF-HARM-INCITE", "go and ki\u20ddll yourself"),  # enclosing mark
    ("SG-SELF-HARM-INCITE", "go and k.i.l.l yourself"),
    ("SG-SELF-HARM-INCITE", "go and k-i-l-l yourself"),
    ("SG-SELF-HARM-INCITE", "go and k_i_l_l yourself"),
    ("SG-SELF-HARM-INCITE", "go and k.i-l_l yourself"),
    ("SG-SELF-HARM-INCITE", "go and k·i·l·l yourself"),
    ("SG-SELF-HARM-INCITE", "just k.y.s"),
    ("SG-SELF-HARM-INCITE", "just K-Y-S"),
    ("SG-SUICIDE", "i want to k-i-l-l myself"),
    ("SG-SUICIDE", "i want to d.i.e"),
    ("THR-VIOLENCE", "I'm going to s.t.a.b that teacher"),
    ("THR-VIOLENCE", "I'm going to st\ufe0fab that teacher"),
    ("THR-VIOLENCE", "I'm going to s\u2800t\u2800a\u2800b that teacher"),
    ("THR-VIOLENCE", "I'm going to s_t_a_b that teacher"),
    ("THR-INTIMIDATION", "we know where you l\u034five"),
    ("ABU-SWEARING-AT", "f.u.c.k off"),
    ("PD-PHONE", "text me on 07700\u200b900\u2060123"),
    ("PD-PHONE", "text me on ０７７００ ９００１２３"),
    ("PD-EMAIL", "mail dave.smith\u200b@gmail.com"),
    # the whole text is read, and a phrase across a window cut is still found
    ("SG-SELF-HARM-INCITE", FAR + "go and kill yourself"),
    ("SG-SELF-HARM-INCITE", "x" * (WINDOW_CHARS - 8) + " go and kill yourself"),
    ("SG-SELF-HARM-INCITE", "a " * (WINDOW_CHARS // 2 - 6) + "go and kill yourself"),
    ("THR-VIOLENCE", FAR + "I'm going to stab that teacher"),
    ("PD-PHONE", FAR + "text me on 07700 900123"),
]

# (category, text): the category must NOT come from the rules.
SPARES = [
    ("safeguarding", "J. K. Rowling visited Year 6"),
    ("safeguarding", "J.K. Rowling and C.S. Lewis in the library"),
    ("safeguarding", "bring a snack, e.g. fruit, i.e. nothing sweet"),
    ("safeguarding", "the S.E.N.D. team meets at 9 a.m."),
    ("safeguarding", "Results day is 21.08.2026 at 09.30"),
    ("safeguarding", "see https://oakfield.sch.uk/k-i-d-s/news_2026 for details"),
    ("safeguarding", "A-Z of the new term: P.E. kit, R.E. books"),
    ("safeguarding", "Wishing you all well \u2764\ufe0f\U0001f44d\U0001f3fd"),
    ("safeguarding", "Line one\u2028line two\r\nline three"),
    ("threat", "U.K. trip to the Natural History Museum"),
    ("threat", "Lovely to see the kids killing it on stage\u2800"),
    ("abusive", "Thank you to our F.A. coach and the P.T.A."),
    ("personal_data", "email office@oakfield.sch.uk"),
    ("personal_data", "Year 7 2nd place on 12.05.2026"),
    ("personal_data", "raised £1,250 for charity"),
    ("personal_data", "J. K. Rowling visited Year 6"),
    ("needs_response", "Well done e.g. to Year 6!"),
]


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.for_school(SCHOOL)


@pytest.mark.parametrize(("rule_id", "text"), FIRES)
def test_evasion_still_fires(engine: RuleEngine, rule_id: str, text: str) -> None:
    hits = engine.run(text)
    assert rule_id in {match.rule_id for match, _ in hits}
    for match, _ in hits:
        assert text[match.start : match.end] == match.matched


@pytest.mark.parametrize(("category", "text"), SPARES)
def test_ordinary_text_is_spared(engine: RuleEngine, category: str, text: str) -> None:
    assessment = combine(engine.run(text), None, {}, None)
    assert Category(category) not in assessment.categories, assessment.matches


def test_the_ignorable_ranges_are_unicodes() -> None:
    regex = pytest.importorskip("regex")
    data = {c for start, end in DEFAULT_IGNORABLE for c in range(start, end + 1)}
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    unicode = {ord(m.group()) for m in regex.finditer(r"\p{Default_Ignorable_Code_Point}", every)}
    assert data == unicode


def test_every_ignorable_code_point_vanishes() -> None:
    for start, end in DEFAULT_IGNORABLE:
        for code in range(start, end + 1):
            text = f"ki{chr(code)}ll"
            assert normalise(text).text == "kill", hex(code)
            assert clean(text).text == "kill", hex(code)


def test_split_letters_map_back_to_the_original() -> None:
    text = "so k.i\ufe0f.l.l yourself"
    norm = normalise(text)
    assert norm.text == "so kill yourself"
    start, end = norm.span(3, 7)
    assert text[start:end] == "k.i\ufe0f.l.l"


def test_hits_from_overlapping_windows_are_not_repeated(engine: RuleEngine) -> None:
    text = "a " * (WINDOW_CHARS // 2 - 500) + "go and kill yourself " + "b " * WINDOW_CHARS
    found = [m for m, _ in engine.run(text) if m.rule_id == "SG-SELF-HARM-INCITE"]
    assert len(found) == 1
    assert found[0].matched.endswith("kill yourself")


def test_a_long_repeated_text_is_read_to_its_end_quickly(engine: RuleEngine) -> None:
    import time

    text = "<!channel> " * 100_000 + "kys"
    started = time.perf_counter()
    hits = engine.run(text)
    assert time.perf_counter() - started < 10
    assert "SG-SELF-HARM-INCITE" in {m.rule_id for m, _ in hits}
