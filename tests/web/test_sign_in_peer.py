"""Sign-in against the real local OpenID provider (tests/peers/oidc, oidc-provider 9.13.3),
and one end-to-end run in Debian's headless chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
from starlette.testclient import TestClient

from monitor.config_models import Config, Routing
from tests.web.conftest import Trust, audit_actions, trust_config

pytestmark = [pytest.mark.webpeer, pytest.mark.peer]

PEER_DIR = Path(__file__).resolve().parent.parent / "peers" / "oidc"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing(message: str) -> None:
    """Skip with ``message``, or fail when every peer must run (CI sets REQUIRE_PEERS=1)."""
    if os.environ.get("REQUIRE_PEERS"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def app_socket() -> Iterator[socket.socket]:
    """The browser test's server socket, bound first: its port is in the provider's redirect URI."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture(scope="session")
def issuer(app_socket: socket.socket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The provider's issuer URL (started once per session, stopped with SIGTERM)."""
    node = shutil.which("node")
    if node is None:
        missing("the local OpenID provider needs node (not found)")
    if not (PEER_DIR / "node_modules" / "oidc-provider").exists():
        if shutil.which("npm") is None:
            missing("the local OpenID provider needs npm to install (npm not found)")
        subprocess.run(["npm", "ci", "--silent"], cwd=PEER_DIR, check=True, timeout=300)
    port = app_socket.getsockname()[1]
    errors = tmp_path_factory.mktemp("oidc") / "provider.err"
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            [
                str(node),
                "provider.mjs",
                "--port",
                "0",
                "--redirect-uri",
                f"http://127.0.0.1:{port}/auth/callback",
            ],
            cwd=PEER_DIR,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), errors.read_text()[-2000:]
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sso_config(issuer: str, port: int) -> Config:
    return trust_config(
        {
            "public_url": f"http://127.0.0.1:{port}",
            "oidc": {
                "issuer": issuer,
                "client_id": "webpeer",
                "client_secret": {"env": "OIDC_CLIENT_SECRET"},
            },
        }
    )


@pytest.fixture
def sso(trust: Trust, issuer: str, app_socket: socket.socket) -> Trust:
    port = app_socket.getsockname()[1]
    trust.config = sso_config(issuer, port)
    return trust


def app_client(trust: Trust) -> TestClient:
    port = urlsplit(trust.config.web.public_url or "").port
    return TestClient(
        trust.app(oidc_client_secret="webpeer-test-secret"), base_url=f"http://127.0.0.1:{port}"
    )


def sso_sign_in(
    client: TestClient, issuer: str, email: str, tamper: Callable[[str], str] | None = None
) -> Any:
    """Sign in through the provider's login page; returns the app's answer to the callback."""
    start = client.get("/login/sso", follow_redirects=False)
    assert start.status_code in (302, 303, 307), start.text
    url = start.headers["location"]
    assert url.startswith(issuer) and "code_challenge_method=S256" in url
    url = tamper(url) if tamper else url
    app_base = str(client.base_url)
    with httpx.Client(follow_redirects=False, timeout=10) as idp:
        answer = idp.get(url)
        for _ in range(10):
            if answer.status_code not in (302, 303):
                break
            url = urljoin(str(answer.url), answer.headers["location"])
            if url.startswith(app_base):
                break
            answer = idp.get(url)
        if not url.startswith(app_base):
            uid = re.search(r'action="/interaction/([^/"]+)/login"', answer.text)
            assert uid, answer.text[:500]
            answer = idp.post(f"{issuer}/interaction/{uid.group(1)}/login", data={"email": email})
            for _ in range(10):
                assert answer.status_code in (302, 303), answer.text[:500]
                url = urljoin(str(answer.url), answer.headers["location"])
                if url.startswith(app_base):
                    break
                answer = idp.get(url)
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_sign_in_with_the_school_account(sso: Trust, issuer: str) -> None:
    client = app_client(sso)
    answer = sso_sign_in(client, issuer, "dsl@school.test")
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    assert "Dana Safeguarding (DSL)" in client.get("/queue").text
    assert ("dana", "web.signed_in", "staff:dana") in audit_actions(sso.sessions)


def test_an_email_not_in_the_register_is_refused(sso: Trust, issuer: str) -> None:
    client = app_client(sso)
    answer = sso_sign_in(client, issuer, "teacher@school.test")
    assert answer.status_code == 403
    assert "teacher@school.test" in answer.text and "not an active member of staff" in answer.text
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_a_bad_nonce_is_refused(sso: Trust, issuer: str) -> None:
    client = app_client(sso)
    answer = sso_sign_in(
        client, issuer, "dsl@school.test", lambda u: with_param(u, "nonce", "forged-nonce")
    )
    assert answer.status_code == 403 and "Sign-in refused" in answer.text
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_a_code_for_another_client_is_refused(sso: Trust, issuer: str) -> None:
    # the provider issues the code to webpeer-public (another audience); the app, webpeer, must
    # not be able to turn it into a session
    client = app_client(sso)
    answer = sso_sign_in(
        client, issuer, "dsl@school.test", lambda u: with_param(u, "client_id", "webpeer-public")
    )
    assert answer.status_code == 403 and "Sign-in refused" in answer.text
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_an_id_token_for_another_audience_is_refused(sso: Trust, issuer: str) -> None:
    """A real ID token issued to webpeer-public is checked by the app's client (webpeer)."""
    import base64
    import hashlib
    import secrets

    from monitor.web.oidc import SignInRefused, SignOn

    port = urlsplit(sso.config.web.public_url or "").port
    redirect = f"http://127.0.0.1:{port}/auth/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = urlencode(
        {
            "client_id": "webpeer-public",
            "response_type": "code",
            "scope": "openid email profile",
            "redirect_uri": redirect,
            "state": "s1",
            "nonce": "n1",
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(follow_redirects=False, timeout=10) as idp:
        answer = idp.get(f"{issuer}/auth?{query}")
        while (
            answer.status_code in (302, 303) and "/interaction/" not in answer.headers["location"]
        ):
            answer = idp.get(urljoin(str(answer.url), answer.headers["location"]))
        uid = answer.headers["location"].rsplit("/", 1)[-1]
        answer = idp.post(f"{issuer}/interaction/{uid}/login", data={"email": "dsl@school.test"})
        while not answer.headers["location"].startswith(redirect):
            answer = idp.get(urljoin(str(answer.url), answer.headers["location"]))
        code = dict(parse_qsl(urlsplit(answer.headers["location"]).query))["code"]
        token = idp.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": "webpeer-public",
                "code_verifier": verifier,
            },
        ).json()
    assert "id_token" in token, token
    oidc = sso.config.web.oidc
    assert oidc is not None
    sign_on = SignOn(oidc, client_secret="webpeer-test-secret")
    with pytest.raises(SignInRefused):
        asyncio.run(sign_on.check_id_token(token, nonce="n1"))
    # the same token checked as its own client passes: the refusal above is the audience
    public = SignOn(oidc.model_copy(update={"client_id": "webpeer-public"}), client_secret=None)
    assert asyncio.run(public.check_id_token(token, nonce="n1")).email == "dsl@school.test"
    with pytest.raises(SignInRefused):
        asyncio.run(public.check_id_token(token, nonce="another-nonce"))


def test_an_sso_session_expires_when_idle(sso: Trust, issuer: str) -> None:
    client = app_client(sso)
    assert sso_sign_in(client, issuer, "moderator@school.test").status_code == 303
    assert client.get("/queue").status_code == 200
    sso.clock.advance(minutes=31)
    answer = client.get("/queue", follow_redirects=False)
    assert answer.status_code == 303 and "expired" in answer.headers["location"]


# ------------------------------------------------------------- a real browser


def test_browser_sign_in_queue_case_and_hide(
    sso: Trust, issuer: str, app_socket: socket.socket
) -> None:
    if not CHROMIUM.exists():
        missing("the browser test needs Debian's chromium at /usr/bin/chromium")
    import uvicorn

    from tests.servers.slack_server import SlackServer

    # the case was alerted in Slack (the local Slack server) before anyone opened the web page
    slack = SlackServer().start()
    sso.config = sso.config.model_copy(
        update={"routing": Routing(slack_default_channel="C0ALERTS", slack_it_channel="C0ALERTS")}
    )
    posted = alert_in_slack(sso, slack)

    app = sso.app(oidc_client_secret="webpeer-test-secret")
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [app_socket]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = sso.config.web.public_url
    case_id = sso.ids["abusive_case"]

    async def drive() -> str:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
            )
            page = await browser.new_page()
            await page.goto(f"{base}/login")
            await page.click("#sso")
            await page.fill("#email", "moderator@school.test")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/queue")
            await shoot(page, "queue.png")
            await page.click(f"a[href='/cases/{case_id}'] >> nth=0")
            await page.wait_for_url(f"{base}/cases/{case_id}")
            assert await page.locator("mark").first.inner_text() == "idiot"
            await shoot(page, "case.png")
            await page.click("button[value=hide]")
            await page.wait_for_selector("text=hide requested: queued for the worker")
            requested = await page.inner_text("body")
            # the worker carries the request out (a stand-in platform), and the page shows it
            await asyncio.to_thread(run_worker_actions, sso)
            await page.goto(f"{base}/cases/{case_id}")
            done = await page.inner_text("body")
            await shoot(page, "case-actioned.png")
            await page.set_viewport_size({"width": 400, "height": 844})  # a phone
            await page.goto(f"{base}/queue")
            await shoot(page, "queue-phone.png")
            sideways = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            # someone the identity provider knows but the staff register does not
            stranger = await (await browser.new_context()).new_page()
            await stranger.goto(f"{base}/login")
            await stranger.click("#sso")
            await stranger.fill("#email", "teacher@school.test")
            await stranger.click("button[type=submit]")
            await stranger.wait_for_selector("text=not an active member of staff")
            await shoot(stranger, "sign-in-refused.png")
            refused = await stranger.inner_text("body")
            await browser.close()
            assert sideways == 0, f"the queue scrolls sideways on a phone by {sideways}px"
            return requested + "\n----\n" + done + "\n----\n" + refused

    try:
        text = asyncio.run(drive())
        # the hide done on the platform changes the case's Slack message in place
        deliver_to_slack(sso, slack)
        updated = slack.message(posted.channel, posted.ts)
        updates = [r for r in slack.requests if r.method == "chat.update"]
        notes = slack.replies(posted.channel, posted.ts)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        slack.stop()
    requested, done, refused = text.split("\n----\n")
    assert "teacher@school.test" in refused and "Not on the staff register" in refused
    assert "hide requested by Morgan Moderator: pending" in requested
    assert "Hide requested by Morgan Moderator" in requested  # the case's history, in words
    assert "hide requested by Morgan Moderator: done" in done
    assert "actioned" in done and "Action taken on the platform by the monitor" in done
    assert [(r.params["channel"], r.params["ts"]) for r in updates] == [(posted.channel, posted.ts)]
    assert len(updated.edits) == 1 and slack_field(updated.edits[0]["blocks"], "State") == "New"
    assert slack_field(updated.blocks, "State") == "Actioned"
    assert f"{base}/cases/{case_id}" in slack_text(updated.blocks)  # links to the case page
    assert any("Action taken on the platform" in (note.text or "") for note in notes), notes


def alert_in_slack(trust: Trust, slack: Any) -> Any:
    """The abusive reply's case alerted (``case_opened``) and posted to the local Slack."""
    from monitor import cases
    from monitor.directory import load_directory
    from monitor.storage import tables as t
    from monitor.storage.db import transaction

    with transaction(trust.sessions) as session:
        case = session.get(t.Case, trust.ids["abusive_case"])
        assert case is not None
        directory = load_directory(session, trust.config.routing, now=trust.clock())
        cases.notify(session, case, directory, kind="case_opened", now=trust.clock())
    deliver_to_slack(trust, slack)
    [posted] = slack.messages
    assert slack_field(posted.blocks, "State") == "New" and not posted.edits
    return posted  # the server's record: later edits change it in place


def deliver_to_slack(trust: Trust, slack: Any) -> None:
    """One pass of the worker's delivery job with the real Slack sender."""
    from monitor.directory import load_directory
    from monitor.jobs.deliver import deliver_pending
    from monitor.notify.slack import SlackSender, make_web_client
    from monitor.web.links import base_url
    from tests.servers.slack_server import BOT_TOKEN

    sender = SlackSender(make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5))
    with trust.sessions() as session:
        directory = load_directory(session, trust.config.routing, now=trust.clock())
    sent = deliver_pending(
        trust.sessions,
        slack=sender,
        email=None,
        directory=directory,
        now=trust.clock(),
        links_base=base_url(trust.config),
    )
    assert sent and all(result.status == "sent" for result in sent), sent


def slack_field(blocks: Any, label: str) -> str:
    """The value of the ``*label*`` field of a Slack message's sections."""
    for block in blocks or []:
        for field in block.get("fields", []):
            name, _, value = str(field.get("text", "")).partition("\n")
            if name == f"*{label}*":
                return value
    raise AssertionError(f"no {label} field in {blocks}")


def slack_text(blocks: Any) -> str:
    """Every piece of text in Slack blocks (with the links' URLs), as one string."""
    import json

    return " ".join(re.findall(r'"(?:text|url)": "((?:[^"\\]|\\.)*)"', json.dumps(blocks)))


async def shoot(page: Any, name: str) -> None:
    """Screenshots for the README when WEB_SCREENSHOTS_DIR is set (docs/screenshots)."""
    folder = os.environ.get("WEB_SCREENSHOTS_DIR")
    if folder:
        await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(folder) / name), full_page=True)


def run_worker_actions(trust: Trust) -> None:
    """The worker's action job against a stand-in platform (as in tests/jobs)."""
    from monitor.directory import load_directory
    from monitor.jobs.actions import run_pending_actions
    from monitor.jobs.poll import ConnectorPool
    from tests.jobs.fake_platform import FakeConnector, FakePlatform

    platform = FakePlatform()
    bound = FakeConnector.bind(platform)
    config = trust.config
    outcomes = run_pending_actions(
        trust.sessions,
        ConnectorPool(environ={}, classes=lambda _p: bound),
        now=trust.clock(),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
    )
    assert outcomes and [call[0] for call in platform.calls] == ["hide"], outcomes
