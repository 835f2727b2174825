"""The web workplace in-process: every route, each role, CSRF, escaping, sessions and audit."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from starlette.testclient import TestClient

from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.web import accounts, totp
from tests.web.conftest import (
    EVIL_NAME,
    EVIL_TEXT,
    PASSWORD,
    Trust,
    audit_actions,
    csrf_of,
    sign_in,
)

Client = Callable[[str], TestClient]


def test_health_routes_stay_open_and_pages_need_sign_in(trust: Trust) -> None:
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    assert client.get("/healthz").json() == {"status": "ok"}
    for path in ("/", "/queue", "/queue/rows", f"/cases/{trust.ids['abusive_case']}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith(("/login", "/queue"))
    response = client.post(
        f"/cases/{trust.ids['abusive_case']}/claim", data={"csrf": "x"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_security_headers_and_cookie_flags(trust: Trust) -> None:
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    response = sign_in(client, "morgan")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ssm_session=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http in this test, no public_url


def test_secure_cookie_behind_tls(trust: Trust) -> None:
    trust.config = trust.config.model_copy(
        update={"web": trust.config.web.model_copy(update={"public_url": "https://m.test"})}
    )
    client = TestClient(trust.app(), base_url="https://127.0.0.1")
    response = sign_in(client, "morgan")
    assert "secure" in response.headers["set-cookie"].lower()


def test_wrong_password_is_refused_and_audited_then_rate_limited(trust: Trust) -> None:
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    for _ in range(5):
        assert sign_in(client, "morgan", "wrong password!!").status_code == 401
    # the sixth attempt is refused even with the right password
    assert sign_in(client, "morgan").status_code == 429
    trust.clock.advance(minutes=16)
    assert sign_in(client, "morgan").status_code == 303
    assert ("web", "web.sign_in_refused", "sign-in") in audit_actions(trust.sessions)


def test_login_post_without_csrf_token_fails(trust: Trust) -> None:
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    client.get("/login")
    response = client.post("/login", data={"name": "morgan", "password": PASSWORD})
    assert response.status_code == 403
    assert "staff" not in str(client.cookies.get("ssm_session"))
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_action_post_without_csrf_token_fails(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    case_id = trust.ids["abusive_case"]
    for data in ({"action": "hide"}, {"action": "hide", "csrf": "forged"}):
        response = client.post(f"/cases/{case_id}/actions", data=data, follow_redirects=False)
        assert response.status_code == 403
    assert client.post(f"/cases/{case_id}/claim", data={}).status_code == 403
    with trust.sessions() as session:
        assert session.scalars(select(t.ActionRequest)).all() == []


def test_queue_lists_gravest_and_most_overdue_first_without_safeguarding_content(
    trust: Trust, client_for: Client
) -> None:
    page = client_for("dana").get("/queue").text
    sg, ab = trust.ids["safeguarding_case"], trust.ids["abusive_case"]
    assert page.index(f"/cases/{sg}") < page.index(f"/cases/{ab}")
    assert "overdue by 2 hours" in page and "due in 4 hours" in page
    assert "secret-title" not in page  # not even the DSL sees it in the queue
    assert f"/cases/{trust.ids['elm_case']}" not in page  # another school's case


def test_queue_filters_and_fragment(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    ab, sg = trust.ids["abusive_case"], trust.ids["safeguarding_case"]
    rows = client.get("/queue/rows?category=abusive").text
    assert f"/cases/{ab}" in rows and f"/cases/{sg}" not in rows and "<html" not in rows
    assert f"/cases/{ab}" not in client.get("/queue/rows?platform=mastodon").text
    assert f"/cases/{ab}" not in client.get("/queue/rows?mine=1").text
    assert "No open cases." in client.get("/queue/rows?school=elm").text
    page = client.get("/queue").text
    assert '<script src="/static/queue.js"' in page and "<script>" not in page
    assert client.get("/static/queue.js").status_code == 200


def test_claim_assigns_to_me_and_shows_under_mine(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    ab = trust.ids["abusive_case"]
    queue = client.get("/queue").text
    response = client.post(
        f"/cases/{ab}/claim",
        data={"csrf": csrf_of(queue), "form_id": "x"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert f"/cases/{ab}" in client.get("/queue/rows?mine=1").text
    assert "Morgan Moderator" in client.get("/queue").text
    with trust.sessions() as session:
        staff = session.scalars(select(t.Staff).where(t.Staff.key == "morgan")).one()
        assigned = session.get(t.Case, ab)
        assert assigned is not None and assigned.assignee_id == staff.id


def test_moderator_cannot_claim_or_read_a_safeguarding_case(
    trust: Trust, client_for: Client
) -> None:
    client = client_for("morgan")
    sg = trust.ids["safeguarding_case"]
    page = client.get(f"/cases/{sg}")
    assert page.status_code == 200
    assert "secret-disclosure-text" not in page.text and "secret-title" not in page.text
    assert "child.bsky.social" not in page.text
    assert "Dana Safeguarding (DSL)" in page.text  # who holds it
    assert 'name="action"' not in page.text  # no action offered
    response = client.post(
        f"/cases/{sg}/actions",
        data={"csrf": csrf_of(page.text), "action": "hide"},
        follow_redirects=False,
    )
    assert response.status_code == 403 and "safeguarding" in response.text
    with trust.sessions() as session:
        assert session.scalars(select(t.ActionRequest)).all() == []
    assert ("morgan", "web.case_viewed", f"case:{sg}") in audit_actions(trust.sessions)


def test_dsl_reads_the_safeguarding_case_and_the_view_is_audited(
    trust: Trust, client_for: Client
) -> None:
    sg = trust.ids["safeguarding_case"]
    page = client_for("dana").get(f"/cases/{sg}").text
    assert "secret-disclosure-text" in page and "child.bsky.social" in page
    with trust.sessions() as session:
        viewed = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "web.case_viewed")
        ).one()
        assert viewed.actor == "dana" and viewed.case_id == sg
        assert viewed.details["content_shown"] is True


def test_moderator_cannot_see_or_act_on_another_schools_case(
    trust: Trust, client_for: Client
) -> None:
    client = client_for("morgan")
    elm = trust.ids["elm_case"]
    page = client.get(f"/cases/{elm}")
    assert page.status_code == 403 and "elm abuse text" not in page.text
    queue = client.get("/queue").text
    for path in (f"/cases/{elm}/actions", f"/cases/{elm}/claim"):
        response = client.post(path, data={"csrf": csrf_of(queue), "action": "hide"})
        assert response.status_code == 403
    with trust.sessions() as session:
        assert session.scalars(select(t.ActionRequest)).all() == []


def test_case_page_shows_the_thread_evidence_and_history_inert(
    trust: Trust, client_for: Client
) -> None:
    ab = trust.ids["abusive_case"]
    page = client_for("morgan").get(f"/cases/{ab}").text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>Bold</b>" not in page
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in page  # the name, as written
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the comment, as written
    assert "<mark>idiot</mark>" in page  # the matched text highlighted
    assert "Sports day is on Friday!" in page and "Looking forward to it" in page  # thread
    assert "abusive.insult" in page and "toxicity: 0.97" in page
    assert "ab" * 32 in page  # evidence hash
    assert "Opened by the monitor" in page  # history in words
    # the disclosure is a sibling reply in this thread: its own case keeps it from moderators
    assert "secret-disclosure-text" not in page and "child.bsky.social" not in page
    assert "withheld: part of a safeguarding case" in page


def test_hide_is_a_request_for_the_worker_and_the_page_says_so(
    trust: Trust, client_for: Client
) -> None:
    client = client_for("morgan")
    ab = trust.ids["abusive_case"]
    page = client.get(f"/cases/{ab}").text
    assert 'value="hide"' in page and 'value="police_reported"' not in page
    # the case-only actions a moderator may take are offered too
    for kind in ("acknowledge", "escalate", "dismiss", "assign", "close"):
        assert f'value="{kind}"' in page, kind
    assert 'value="reply"' not in page  # public replies: comms and leaders only
    response = client.post(
        f"/cases/{ab}/actions",
        data={"csrf": csrf_of(page), "action": "hide", "form_id": "f1"},
    )
    assert "hide requested: queued for the worker" in response.text
    assert "hide requested by Morgan Moderator: pending" in response.text
    # the same form sent twice is one request
    client.post(
        f"/cases/{ab}/actions", data={"csrf": csrf_of(page), "action": "hide", "form_id": "f1"}
    )
    with trust.sessions() as session:
        made = session.scalars(select(t.ActionRequest)).all()
        assert [(r.kind, r.requested_by, r.status) for r in made] == [("hide", "morgan", "pending")]
    assert ("morgan", "action.requested", f"case:{ab}") in audit_actions(trust.sessions)


def test_case_only_actions_change_the_case_at_once(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    ab = trust.ids["abusive_case"]
    page = client.get(f"/cases/{ab}").text
    response = client.post(
        f"/cases/{ab}/actions", data={"csrf": csrf_of(page), "action": "acknowledge"}
    )
    assert "acknowledge requested: done" in response.text
    assert '<dd id="case-state">acknowledged' in response.text
    assert "Acknowledged by Morgan Moderator" in response.text


def test_reply_from_a_template_is_previewed_as_posted_then_requested(
    trust: Trust, client_for: Client
) -> None:
    client = client_for("sam")  # a senior leader of Oak: public replies are leaders' and comms'
    ab = trust.ids["abusive_case"]
    page = client.get(f"/cases/{ab}").text
    preview = page.split('<details class="preview">', 1)[1].split("</details>", 1)[0]
    # the preview is the text as posted: the school's name filled in
    assert (
        '<dt>acknowledge</dt><dd class="text">Thank you for getting in touch with Oak School.'
        in preview
    )
    assert "{school}" not in preview
    response = client.post(
        f"/cases/{ab}/actions",
        data={"csrf": csrf_of(page), "action": "reply", "template": "acknowledge"},
    )
    assert "reply requested by Sam Senior: pending" in response.text
    with trust.sessions() as session:
        [request] = session.scalars(
            select(t.ActionRequest).where(t.ActionRequest.case_id == ab)
        ).all()
        assert request.kind == "reply"
        assert "Thank you for getting in touch with Oak School." in str(request.params)


def test_a_session_after_the_leaving_date_is_refused(trust: Trust, client_for: Client) -> None:
    # Lee's last day is 30 November: signed in late that evening, still working after midnight
    trust.clock.now = trust.clock.now.replace(day=30, hour=23, minute=0)
    client = client_for("lee")
    assert client.get("/queue").status_code == 200
    for _ in range(2):
        trust.clock.advance(minutes=20)
        assert client.get("/queue/rows").status_code == 200
    trust.clock.advance(minutes=25)  # 1 December 00:05 in London, never idle for 30 minutes
    response = client.get("/queue")
    assert response.status_code == 403 and "no longer in post" in response.text
    assert client.get("/queue", follow_redirects=False).status_code == 303  # signed out
    assert ("lee", "web.session_refused", "staff:lee") in audit_actions(trust.sessions)
    # and cannot sign in again
    assert sign_in(TestClient(trust.app(), base_url="http://127.0.0.1"), "lee").status_code == 401


def test_idle_session_ends(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    trust.clock.advance(minutes=29)
    assert client.get("/queue").status_code == 200
    trust.clock.advance(minutes=31)
    response = client.get("/queue", follow_redirects=False)
    assert response.status_code == 303 and "expired" in response.headers["location"]


def test_sign_out_needs_csrf_and_ends_the_session(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    page = client.get("/queue").text
    assert client.post("/logout", data={}).status_code == 403
    assert (
        client.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code
        == 303
    )
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_totp_is_required_once_set(trust: Trust) -> None:
    with transaction(trust.sessions) as session:
        made = accounts.set_password(session, "morgan", PASSWORD, now=trust.clock(), with_totp=True)
    assert made.totp_secret
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    assert sign_in(client, "morgan").status_code == 401
    code = totp.totp_at(totp.decode_secret(made.totp_secret), trust.clock())
    assert sign_in(client, "moderator@school.test", code=code).status_code == 303


def test_next_never_leaves_the_site(trust: Trust) -> None:
    client = TestClient(trust.app(), base_url="http://127.0.0.1")
    page = client.get("/login").text
    response = client.post(
        "/login",
        data={
            "csrf": csrf_of(page),
            "name": "morgan",
            "password": PASSWORD,
            "next": "//evil.test/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/queue"


def test_evil_names_in_the_queue_are_inert(trust: Trust, client_for: Client) -> None:
    page = client_for("morgan").get("/queue").text
    assert EVIL_NAME not in page and "&lt;script&gt;" in page
    assert EVIL_TEXT not in page
