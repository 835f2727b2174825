"""The digest on a phone (400 px, headless Chromium) and in Outlook (tables, inline styles)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.digest.figures import compute
from monitor.digest.render import RenderedDigest, render
from tests.digest import seed_digest as sd
from tests.digest.test_digest_render import parse

CHROMIUM = Path("/usr/bin/chromium")
PHONE = 400


@pytest.fixture
def digests(sessions: sessionmaker[Session]) -> dict[str, RenderedDigest]:
    config = sd.make_config()
    sd.insert(sessions, config, sd.build())
    with sessions() as session:
        return {
            scope: render(
                compute(session, week=sd.WEEK, scope=scope, now=sd.NOW),
                organisation=config.organisation.name,
                dashboard_url=config.organisation.dashboard_url,
                case_base="https://monitor.example.org",
                images="data",
            )
            for scope in ("trust", "oak")
        }


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")
@pytest.mark.parametrize("scope", ["trust", "oak"])
def test_a_phone_shows_one_column_without_sideways_scrolling(
    digests: dict[str, RenderedDigest], scope: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": PHONE, "height": 800})
            # nothing leaves the machine: the charts are data: URIs, everything else is refused
            page.route("http*://**", lambda route: route.abort())
            page.set_content(digests[scope].html, wait_until="load")
            width = page.evaluate("document.documentElement.scrollWidth")
            body = page.evaluate("document.body.scrollWidth")
            widest = page.evaluate(
                "Math.max(...[...document.querySelectorAll('body *')]"
                ".map(e => e.getBoundingClientRect().right))"
            )
            # the preview line is in the page but never seen
            hidden = page.evaluate("getComputedStyle(document.body.firstElementChild).display")
            text = page.inner_text("body")
            shot = Path(os.environ.get("DIGEST_SCREENSHOT_DIR", tmp_path)) / f"phone-{scope}.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert width <= PHONE and body <= PHONE, (width, body)
    assert widest <= PHONE, widest
    assert hidden == "none"
    assert text.index("Needs your decision") < text.index("The week in figures")
    assert shot.stat().st_size > 0


class Elements(HTMLParser):
    """Each start tag with its own attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


# Outlook's Word engine lays out by tables and width attributes; it ignores these for layout
OUTLOOK_IGNORES = re.compile(
    r"(^|;)\s*(display\s*:\s*(flex|grid|inline-block)|float\s*:|position\s*:|"
    r"margin\s*:\s*auto|flex|grid-)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("scope", ["trust", "oak"])
def test_outlook_gets_tables_with_fixed_widths(
    digests: dict[str, RenderedDigest], scope: str
) -> None:
    html = digests[scope].html
    parsed = parse(html)
    assert "style" not in parsed.tags and "link" not in parsed.tags  # no style sheet
    order = elements(html)
    assert {tag for tag, _ in order} >= {"table", "td"}
    for tag, attrs in order:
        style = attrs.get("style") or ""
        assert not OUTLOOK_IGNORES.search(style), (tag, style)
        # anything that shrinks on a phone keeps a fixed width attribute for Outlook
        if "max-width" in style and "display:none" not in style:
            assert attrs.get("width"), (tag, style)
    # the card is 600 wide for Outlook, 100% (at most 600) elsewhere
    assert 'width="600"' in html and "width:100%;max-width:600px" in html
    # the preview line is hidden from Outlook too
    assert "mso-hide:all" in html
