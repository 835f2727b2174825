"""Escaping platform text for Slack: examples, then properties over hostile input."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.notify.escape import (
    ELLIPSIS,
    clean_text,
    defuse_mentions,
    escape_mrkdwn,
    escape_text,
    inline_code,
    mrkdwn_link,
    safe_url,
    truncate,
    utf16_len,
)

# Every Slack "special parsing" form and markup character, plus odd Unicode.
FRAGMENTS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<@U123ABC>",
    "<@W1|bob>",
    "<#C1>",
    "<#C024BE7LR|general>",
    "<!subteam^S123|@staff>",
    "<!date^1392734382^{date}|x>",
    "<http://evil.example|click me>",
    "<mailto:a@b.c|mail>",
    "@channel",
    "@HERE",
    "@everyone",
    "@group",
    "&",
    "&amp;",
    "&lt;",
    "&gt;",
    "&#60;",
    "<",
    ">",
    "> quote",
    "\n>>> quote",
    "*bold*",
    "_italic_",
    "~strike~",
    "`code`",
    "```block```",
    "<script>alert(1)</script>",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200f",
    "\u061c",
    "\ufeff",
    "\u200b",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\u2028",
    "e\u0301",
    "\u0301" * 20,
    "👩‍👩‍👧",
    "👍🏽",
    "🇬🇧",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "\U000e0041\U000e0042",
    "\ud800",
    "\udfff",
    "\ufffe",
]
ODD_CHARS = st.characters(categories=["Cc", "Cf", "Cs", "Mn", "Zl", "Zp", "So", "Co"])
HOSTILE = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20), ODD_CHARS), max_size=40
).map("".join)

MENTION = re.compile(r"@(?:channel|here|everyone|group)", re.IGNORECASE)
BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")
BIDI_AND_INVISIBLE = set(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff\u200b"
)


def assert_slack_safe(out: str) -> None:
    """No markup Slack could act on, no odd characters, valid UTF-8."""
    assert "<" not in out
    assert ">" not in out
    assert not BARE_AMPERSAND.search(out)
    assert not MENTION.search(out)
    assert not BIDI_AND_INVISIBLE & set(out)
    assert all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F) for ch in out)
    out.encode("utf-8")  # no lone surrogates


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<!channel> hi", "&lt;!channel&gt; hi"),
        ("<@U123> & <#C1>", "&lt;@U123&gt; &amp; &lt;#C1&gt;"),
        ("&lt;!here&gt;", "&amp;lt;!here&amp;gt;"),
        ("ping @here and @Channel", "ping ＠here and ＠Channel"),
        ("a\u202eevil\u202cb", "aevilb"),
        ("line1\r\nline2\u2028line3", "line1\nline2\nline3"),
        ("a\n\n\n\n\nb", "a\n\nb"),
        ("  padded \x00\x07 ", "padded"),
        ("dan@school.org.uk", "dan@school.org.uk"),
        ("*not* _changed_ in plain text", "*not* _changed_ in plain text"),
    ],
)
def test_escape_text_examples(raw: str, expected: str) -> None:
    assert escape_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("*bold* _it_ ~s~ `c`", "∗bold∗ ˍitˍ ∼s∼ ˋcˋ"),
        ("> quoted\n  >> nested\nnot > quoted", "› quoted\n  ›&gt; nested\nnot &gt; quoted"),
        ("<http://x|y>", "&lt;http://x|y&gt;"),
    ],
)
def test_escape_mrkdwn_examples(raw: str, expected: str) -> None:
    # Only a line-leading ">" starts a quote; any other ">" is just escaped.
    assert escape_mrkdwn(raw) == expected


def test_inline_code_keeps_handles_exact_and_flat() -> None:
    assert inline_code("@st_marys_school") == "`@st_marys_school`"
    assert inline_code("a`b\nc<@U1>") == "`aˋb c&lt;@U1&gt;`"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
        ("aaaaaaaaaa&amp;", 13, "aaaaaaaaaa…"),  # never half an entity
        ("ab👍🏽cd", 5, "ab…"),  # never a thumb without its skin tone
        ("x🇬🇧🇫🇷", 6, "x🇬🇧…"),  # never half a flag
        ("a👩‍👩‍👧z", 6, "a…"),  # never half a family
        ("word   next", 6, "word…"),
        ("ab", 1, "…"),
    ],
)
def test_truncate_examples(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


def test_zalgo_is_tamed_and_flags_kept() -> None:
    cleaned = clean_text(
        "Z" + "\u0301\u0302\u0303" * 20 + " 🏴\U000e0067\U000e0062\U000e007f x\U000e0041"
    )
    assert len(cleaned) < 20
    assert "🏴\U000e0067\U000e0062\U000e007f" in cleaned  # subdivision flag survives
    assert "\U000e0041" not in cleaned  # stray tag characters (hidden text) do not


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bsky.app/profile/a/post/1", "https://bsky.app/profile/a/post/1"),
        ("https://x.test/?a=1&b=<!channel>|y", "https://x.test/?a=1&b=%3C!channel%3E%7Cy"),
        ("http://x.test/a b", None),
        ("javascript:alert(1)", None),
        ("data:text/html,<b>", None),
        ("https://", None),
        ("https://x.test/\u202e", None),
    ],
)
def test_safe_url(url: str, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_mrkdwn_link_escapes_both_parts() -> None:
    link = mrkdwn_link("https://x.test/?a=1&b=2", "Open *now* <@U1>")
    assert link == "<https://x.test/?a=1&amp;b=2|Open ∗now∗ &lt;@U1&gt;>"
    assert mrkdwn_link("ftp://x.test/", "x") is None


@settings(max_examples=300)
@given(HOSTILE)
def test_escape_text_output_is_always_safe(raw: str) -> None:
    assert_slack_safe(escape_text(raw))


@settings(max_examples=300)
@given(HOSTILE)
def test_escape_text_loses_nothing_but_odd_characters(raw: str) -> None:
    # Unescaping gives back the cleaned text: what a reader sees is what was written.
    assert html.unescape(escape_text(raw)) == defuse_mentions(clean_text(raw))


@settings(max_examples=300)
@given(HOSTILE)
def test_escape_mrkdwn_output_has_no_markup(raw: str) -> None:
    out = escape_mrkdwn(raw)
    assert_slack_safe(out)
    assert not set("*_~`") & set(out)
    assert not re.search(r"^[ \t]*&gt;", out, re.MULTILINE)


@settings(max_examples=200)
@given(HOSTILE)
def test_inline_code_is_one_code_span(raw: str) -> None:
    out = inline_code(raw, limit=50)
    assert out.startswith("`") and out.endswith("`") and out.count("`") == 2
    assert "\n" not in out
    assert utf16_len(out) <= 50
    assert_slack_safe(out.strip("`"))


@settings(max_examples=300)
@given(HOSTILE, st.integers(min_value=1, max_value=120))
def test_truncated_output_fits_and_is_a_clean_prefix(raw: str, limit: int) -> None:
    full = escape_text(raw)
    out = escape_text(raw, limit=limit)
    assert utf16_len(out) <= limit
    assert_slack_safe(out)
    if out != full:
        assert out.endswith(ELLIPSIS)
        assert full.startswith(out[: -len(ELLIPSIS)])
