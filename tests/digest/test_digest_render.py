"""Rendering: escaping of every untrusted name, counts-only safeguarding, mail-safe HTML."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.digest.figures import compute
from monitor.digest.render import RenderedDigest, duration, pct, render
from tests.digest import seed_digest as sd


class Parsed(HTMLParser):
    """Tags, attributes and the text a reader would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.tags.append("!" + decl.lower())


def parse(html: str) -> Parsed:
    parsed = Parsed()
    parsed.feed(html)
    parsed.close()
    return parsed


@pytest.fixture
def rendered(sessions: sessionmaker[Session]) -> dict[str, RenderedDigest]:
    config = sd.make_config()
    sd.insert(sessions, config, sd.build())
    out = {}
    with sessions() as session:
        for scope in ("trust", "oak"):
            figures = compute(session, week=sd.WEEK, scope=scope, now=sd.NOW)
            out[scope] = render(
                figures,
                organisation=config.organisation.name,
                dashboard_url=config.organisation.dashboard_url,
            )
    return out


SECRETS = (sd.SG_TEXT, "ZEBRA-SAFEGUARD", sd.SG_AUTHOR, sd.SG_AUTHOR_NAME, "troll", "parent.one")


@pytest.mark.parametrize("scope", ["trust", "oak"])
def test_untrusted_text_is_escaped_not_executed(rendered: Any, scope: str) -> None:
    digest: RenderedDigest = rendered[scope]
    html = digest.html
    parsed = parse(html)
    # nothing active: no script, style sheet, frame, form, or event handler
    assert set(parsed.tags) <= {
        "!doctype html",
        "html",
        "head",
        "meta",
        "title",
        "body",
        "table",
        "tr",
        "td",
        "th",
        "div",
        "span",
        "b",
        "br",
        "img",
        "a",
    }
    assert not parsed.comments
    for _, name, value in parsed.attrs:
        assert not name.startswith("on")
        assert "javascript:" not in (value or "").lower()
    for tag, name, value in parsed.attrs:
        if tag == "img" and name == "src":
            assert value in {"cid:trend-items", "cid:trend-flagged", "cid:trend-compliance"}
        if name == "href":
            assert value == "https://monitor.example.org/?a=1&b=%3C2%3E"
    # hostile names are shown as text, escaped
    for raw in ("<script>", "<!channel>", "<img src=x", "<Trust>", "<b>Comms"):
        assert raw not in html
    text = "".join(parsed.text)
    if scope == "oak":
        assert 'Oak <script>alert("x")</script> & <!channel> Academy' in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;!channel&gt;" in html
    assert "<img src=x onerror=alert(1)>&amp;.bsky.social" in text
    assert "Northfield & <Trust>" in text
    # control and bidi characters are dropped, huge names cut short
    for part in (html, digest.text, digest.subject):
        assert "\u202e" not in part
        assert "R" * 61 not in part
        for secret in SECRETS:
            assert secret not in part
    assert len(html) < 100_000  # Gmail clips messages over 102 kB
    assert 'width="600"' in html
    # mail-client layout: no style sheet or classes, tables for layout, every cell styled inline
    names = {name for _, name, _ in parsed.attrs}
    assert not names & {"class", "id"}
    styled = {(tag, name) for tag, name, _ in parsed.attrs if name == "style"}
    assert {("td", "style"), ("th", "style")} <= styled
    cells = parsed.tags.count("td") + parsed.tags.count("th")
    assert (
        sum(1 for tag, name, _ in parsed.attrs if tag in ("td", "th") and name == "style") == cells
    )
    tables = parsed.tags.count("table")
    assert (
        sum(1 for tag, name, _ in parsed.attrs if tag == "table" and name == "cellpadding")
        == tables
    )


def test_safeguarding_is_counts_only(rendered: Any) -> None:
    digest: RenderedDigest = rendered["trust"]
    text = "".join(parse(digest.html).text)
    section = text[text.index("Safeguarding") : text.index("Response targets")]
    assert "Concerns referred to the DSL this week" in section
    assert re.sub(r"[^0-9 ]", " ", section).split() == ["3", "11"]
    assert "Concerns referred to the DSL this week: 3" in digest.text


def test_charts_are_inline_images_or_data_uris(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.build())
    with sessions() as session:
        figures = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    email = render(figures, organisation="Trust")
    assert set(email.images) == {"trend-items", "trend-flagged", "trend-compliance"}
    preview = render(figures, organisation="Trust", images="data")
    assert preview.images == {}
    assert "cid:" not in preview.html
    sources = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', preview.html)
    assert [base64.b64decode(s) for s in sources] == list(email.images.values())


def test_times_are_shown_in_london_time(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.build())
    with sessions() as session:
        summer = compute(session, week="2026-W27", scope="trust", now=sd.NOW)
        winter = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    summer_text = render(summer, organisation="Trust").text
    assert "Mon 29 Jun 2026 00:00 BST to Mon 06 Jul 2026 00:00 BST" in summer_text
    assert "Mon 29 Jun – Sun 05 Jul 2026" in summer_text
    assert render(summer, organisation="Trust").subject.endswith("29 Jun to 5 Jul 2026")
    winter_text = render(winter, organisation="Trust").text
    assert "Mon 16 Nov 2026 00:00 GMT to Mon 23 Nov 2026 00:00 GMT" in winter_text
    # the handover during the week, at 08:00 UTC = 08:00 GMT
    assert "Gwen Gone on Wed 18 Nov 2026 08:00 GMT" in winter_text


def test_the_text_part_reads_well(rendered: Any) -> None:
    text = rendered["oak"].text
    assert text.startswith(
        'WEEKLY SOCIAL MEDIA DIGEST: Oak <script>alert("x")</script> & <!channel>'
    )
    # plain text is not HTML-escaped (the handle itself holds a literal "&amp;")
    assert "&lt;" not in text and "&#34;" not in text and "& <!channel>" in text
    assert "\n\n\n" not in text
    for line in text.splitlines():
        assert len(line) <= 200


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        (0, "0s"),
        (59.4, "59s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1h 00m"),
        (5 * 3600 + 180, "5h 03m"),
        (48 * 3600, "2d 0h"),
        (3 * 86400 + 4 * 3600, "3d 4h"),
    ],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "—"), (100.0, "100%"), (96.66, "96.7%"), (0.0, "0%")]
)
def test_pct(value: float | None, shown: str) -> None:
    assert pct(value) == shown
