"""Every page of the workplace in Debian's headless chromium (Playwright), signed in with a
local account: each opens for the person it is for, fits a phone's width (no sideways
scrolling at 400 px) and, with WEB_SCREENSHOTS_DIR set, is photographed for the README."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, Trust
from tests.web.test_sign_in_peer import CHROMIUM, CHROMIUM_FLAGS, missing, shoot

pytestmark = [pytest.mark.webpeer, pytest.mark.peer]

PHONE: Any = {"width": 400, "height": 860}  # playwright ViewportSize
DESKTOP: Any = {"width": 1280, "height": 900}
# how wide the page is beyond the window (0 when it fits): the document, or any element
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  return {scroll: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5)};
}"""


@pytest.fixture
def served(trust: Trust) -> Iterator[str]:
    """The app on a free loopback port (uvicorn in a thread); yields its base URL."""
    if not CHROMIUM.exists():
        missing("the browser test needs Debian's chromium at /usr/bin/chromium")
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(trust.app(), log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def sign_in(browser: Any, base: str, who: str) -> Any:
    """A fresh browser context signed in as ``who``; returns its page."""
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#name", who)
    await page.fill("#password", PASSWORD)
    await page.click("form.stack button[type=submit]")
    await page.wait_for_url(f"{base}/queue")
    return page


# the pages photographed for the README (desktop width, or a phone's)
SHOTS = {"accounts", "staff", "handover", "audit", "subject-access", "evidence"}
PHONE_SHOTS = {"digest", "case"}


async def look(page: Any, name: str) -> tuple[str, dict[str, Any]]:
    """The page's text and how far it overflows a phone's width (photographed if listed)."""
    await page.set_viewport_size(DESKTOP)
    if name in SHOTS:
        await shoot(page, f"{name}.png")
    await page.set_viewport_size(PHONE)
    overflow: dict[str, Any] = await page.evaluate(OVERFLOW)
    if name in PHONE_SHOTS:
        await shoot(page, f"{name}-phone.png")
    await page.set_viewport_size(DESKTOP)
    return await page.inner_text("body"), overflow


def test_every_page_opens_for_its_reader_and_fits_a_phone(trust: Trust, served: str) -> None:
    base = served
    case_id = trust.ids["abusive_case"]
    seen: dict[str, tuple[str, dict[str, Any]]] = {}

    async def drive() -> None:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
            )
            refused = await (await browser.new_context(viewport=DESKTOP)).new_page()
            await refused.goto(f"{base}/login")
            await refused.fill("#name", "morgan")
            await refused.fill("#password", "not the password")
            await refused.click("form.stack button[type=submit]")
            seen["login-refused"] = await look(refused, "login-refused")

            ivy = await sign_in(browser, base, "ivy")  # IT, trust-wide
            for path, name in (
                ("/queue", "queue-it"),
                ("/accounts", "accounts"),
                ("/staff", "staff"),
                ("/staff/lee/leave", "handover"),
                ("/audit?verify=1", "audit"),
                ("/subject-access", "subject-access-form"),
            ):
                await ivy.goto(f"{base}{path}")
                seen[name] = await look(ivy, name)
            await ivy.fill("#handle", "troll.bsky.social")
            await ivy.click("main form button[type=submit]")
            await ivy.wait_for_selector(".letter")
            seen["subject-access"] = await look(ivy, "subject-access")

            sam = await sign_in(browser, base, "sam")  # senior leader of Oak
            await sam.goto(f"{base}/digest?school=oak")
            seen["digest"] = await look(sam, "digest")

            dana = await sign_in(browser, base, "dana")  # the DSL
            await dana.goto(f"{base}/cases/{case_id}")
            seen["evidence"] = await look(dana, "evidence")
            seen["case"] = await look(dana, "case")
            async with dana.expect_download() as download:
                await dana.click("button[name=format][value=pdf]")
            pdf = await (await download.value).path()
            seen["evidence-pdf"] = ((await asyncio.to_thread(pdf.read_bytes))[:5].decode(), {})
            await dana.goto(f"{base}/queue")
            seen["queue"] = await look(dana, "queue-dsl")
            await browser.close()

    asyncio.run(drive())
    assert "That name, password or code is not right." in seen["login-refused"][0]
    assert "oak-bsky" in seen["accounts"][0] and "elm-masto" in seen["accounts"][0]
    assert "Lee Leaver" in seen["staff"][0] and "2026-11-30" in seen["staff"][0]
    assert "Lee Leaver" in seen["handover"][0] and "Preview the handover" in seen["handover"][0]
    assert "Chain verified" in seen["audit"][0], seen["audit"][0][:300]
    assert "troll.bsky.social" in seen["subject-access"][0]
    assert "Oak School" in seen["digest"][0]
    assert "SHA-256" in seen["evidence"][0] and "Evidence pack" in seen["evidence"][0]
    assert seen["evidence-pdf"][0] == "%PDF-"
    too_wide = {
        name: overflow
        for name, (_, overflow) in seen.items()
        if overflow and (overflow["scroll"] > 0 or overflow["wide"])
    }
    assert not too_wide, too_wide
