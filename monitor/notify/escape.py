"""Making platform text safe to show in Slack: no mentions, no markup, no odd Unicode.

Slack's formatting reference: ``&``, ``<`` and ``>`` are the only control characters and
must be sent as ``&amp;``, ``&lt;`` and ``&gt;`` (nothing else is entity-encoded). Every
mention, channel link, user-group ping and hyperlink is written between ``<`` and ``>``,
so once those are escaped no platform text can ping anyone. The bare words ``@channel``,
``@here`` and ``@everyone`` are parsed too when a message asks for ``link_names`` or
``parse=full`` (we never do), so they are defused as well. mrkdwn has no escape character
for ``*``, ``_``, ``~`` and backticks, and a quote is a line starting with ``>`` (even
when sent as ``&gt;``): where untrusted text must sit inside mrkdwn those are replaced by
look-alike characters. Blocks use ``plain_text`` for untrusted text wherever Slack allows.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, urlsplit

ELLIPSIS = "…"
ZWJ = "\u200d"

# Joiners shape emoji sequences and Indic/Persian scripts; every other format character
# (bidi overrides and isolates, zero-width spaces, BOM, invisible operators) is dropped.
_KEPT_FORMAT = frozenset({"\u200c", ZWJ})
_BLACK_FLAG = "\U0001f3f4"  # tag characters are kept only after it (England, Scotland, Wales flags)
_LINE_BREAKS = re.compile(r"\r\n|[\r\u2028\u2029\x85\x0b\x0c]")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
# "Zalgo" text stacks dozens of marks on one letter; real scripts need a handful at most.
MAX_COMBINING_RUN = 5

_SPECIAL_MENTION = re.compile(r"@(?=(?:channel|here|everyone|group))", re.IGNORECASE)
FULLWIDTH_AT = "\uff20"  # looks like @, never parsed by Slack

# mrkdwn control characters and the look-alikes shown instead (Slack has no escape character).
MRKDWN_LOOKALIKES = {
    ord("*"): "\u2217",  # ∗ asterisk operator
    ord("_"): "\u02cd",  # ˍ modifier letter low macron
    ord("~"): "\u223c",  # ∼ tilde operator
    ord("`"): "\u02cb",  # ˋ modifier letter grave accent
}
QUOTE_LOOKALIKE = "\u203a"  # › instead of a line-leading ">" (a block quote in mrkdwn)
_LINE_START_QUOTE = re.compile(r"^([ \t]*)>", re.MULTILINE)
_ENTITY = re.compile(r"&(?:amp|lt|gt);")

# Characters a URL may keep as they are (RFC 3986 reserved and unreserved, plus %).
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"
MAX_URL_LENGTH = 3000


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def clean_text(text: str) -> str:
    """``text`` without control, bidi and invisible characters, NFC-normalised and trimmed."""
    text = _LINE_BREAKS.sub("\n", text)
    out: list[str] = []
    marks = 0
    after_flag = False
    for ch in text:
        code = ord(ch)
        category = unicodedata.category(ch)
        if category in ("Mn", "Me"):
            marks += 1
            if marks > MAX_COMBINING_RUN:
                continue
        else:
            marks = 0
        if 0xE0020 <= code <= 0xE007F:  # tag characters
            if after_flag:
                out.append(ch)
            continue
        after_flag = ch == _BLACK_FLAG
        dropped = (
            category in ("Cc", "Cs")
            or _is_noncharacter(code)
            or (category == "Cf" and ch not in _KEPT_FORMAT)
        )
        if ch in "\n\t" or not dropped:
            out.append(ch)
    cleaned = unicodedata.normalize("NFC", "".join(out))
    return _BLANK_LINES.sub("\n\n", cleaned).strip()


def defuse_mentions(text: str) -> str:
    """``@channel``, ``@here``, ``@everyone`` (and ``@group``) with a look-alike ``@``."""
    return _SPECIAL_MENTION.sub(FULLWIDTH_AT, text)


def escape_entities(text: str) -> str:
    """Slack's three control characters as entities (``&`` first, so nothing is doubled)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the stricter reading of Slack's character limits."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _extends_previous(ch: str) -> bool:
    # Characters that belong to the grapheme before them: marks, joiners, variation
    # selectors, skin-tone modifiers and tag characters.
    code = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch in _KEPT_FORMAT
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _safe_cut(text: str, cut: int) -> int:
    # Move the cut left until it splits neither an entity nor a grapheme cluster.
    while True:
        before = cut
        while cut > 0 and (_extends_previous(text[cut]) or text[cut - 1] == ZWJ):
            cut -= 1
        if cut > 0 and _is_regional_indicator(text[cut]) and _is_regional_indicator(text[cut - 1]):
            run = 0
            while cut - run - 1 >= 0 and _is_regional_indicator(text[cut - run - 1]):
                run += 1
            if run % 2 == 1:  # the cut would split a flag (a pair of regional indicators)
                cut -= 1
        amp = text.rfind("&", max(0, cut - 4), cut)
        if amp != -1:
            entity = _ENTITY.match(text, amp)
            if entity is not None and entity.end() > cut:
                cut = amp
        if cut == before:
            return cut


def truncate(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """``text`` cut to ``limit`` UTF-16 units with ``ellipsis``, never inside an entity or emoji."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if utf16_len(text) <= limit:
        return text
    budget = limit - utf16_len(ellipsis)
    if budget < 0:
        return ""
    used = 0
    cut = 0
    for index, ch in enumerate(text):
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        used += width
        cut = index + 1
    cut = _safe_cut(text, cut)
    return text[:cut].rstrip() + ellipsis


def escape_text(text: str, *, limit: int | None = None) -> str:
    """Untrusted text for a ``plain_text`` object or a message's fallback ``text``."""
    safe = escape_entities(defuse_mentions(clean_text(text)))
    return truncate(safe, limit) if limit is not None else safe


def escape_mrkdwn(text: str, *, limit: int | None = None) -> str:
    """Untrusted text for a ``mrkdwn`` object: also no bold, italic, strike, code or quote."""
    safe = defuse_mentions(clean_text(text)).translate(MRKDWN_LOOKALIKES)
    safe = escape_entities(_LINE_START_QUOTE.sub(rf"\1{QUOTE_LOOKALIKE}", safe))
    return truncate(safe, limit) if limit is not None else safe


def inline_code(text: str, *, limit: int = 200) -> str:
    """Untrusted single-line text (a handle, an id) as mrkdwn inline code, shown exactly."""
    flat = " ".join(clean_text(text).split())
    safe = escape_entities(defuse_mentions(flat).replace("`", MRKDWN_LOOKALIKES[ord("`")]))
    return f"`{truncate(safe, max(1, limit - 2)) or ELLIPSIS}`"


def safe_url(url: str) -> str | None:
    """``url`` percent-encoded so it cannot break out of a Slack link, or None if not http(s)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    if any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe=_URL_SAFE)


def mrkdwn_link(url: str, label: str) -> str | None:
    """A mrkdwn ``<url|label>`` link with both parts made safe, or None for a non-web URL."""
    target = safe_url(url)
    if target is None:
        return None
    return f"<{escape_entities(target)}|{escape_mrkdwn(label, limit=200) or 'link'}>"
